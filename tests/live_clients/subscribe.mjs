// A real client's subscription, for the tests: graphql-ws (over the ws package) or
// graphql-sse (distinct connections mode). Prints one JSON line per thing that happens:
// {"connected": true} (graphql-ws), {"next": <result>}, {"error": ...}, {"complete": true},
// and exits after COUNT results, or on an error or the end of the subscription.
// Usage: node subscribe.mjs ws|sse URL QUERY [TOKEN] [COUNT]
import { createClient as createWsClient } from "graphql-ws";
import { createClient as createSseClient } from "graphql-sse";
import WebSocket from "ws";

const [transport, url, query, token, count] = process.argv.slice(2);
const wanted = Number(count || 1);
const say = (thing) => process.stdout.write(JSON.stringify(thing) + "\n");
let seen = 0;
let client;

if (transport === "ws") {
  client = createWsClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
    retryAttempts: 0,
    on: { connected: () => say({ connected: true }), closed: (e) => say({ closed: e?.code ?? null }) },
  });
} else {
  client = createSseClient({
    url,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
  });
}

client.subscribe(
  { query },
  {
    next: (result) => {
      say({ next: result });
      seen += 1;
      if (seen >= wanted) {
        client.dispose();
        process.exit(0);
      }
    },
    error: (error) => {
      say({ error: error?.message ?? (Array.isArray(error) ? error : String(error?.code ?? error)) });
      process.exit(1);
    },
    complete: () => {
      say({ complete: true });
      process.exit(0);
    },
  },
);
if (transport === "sse") say({ started: true }); // graphql-sse tells nothing before an event
