// Runs operations through Apollo Client as an app built with trusted documents does, and
// prints one JSON object: each operation's result, and every request Apollo Client made.
//
//   node query.mjs '<spec>'
//
// spec: {"url": ".../graphql", "manifest": "<file>", "token": "<bearer or empty>",
//        "operations": [{"name", "query", "variables", "type", "link"}]}
// link: "manifest" (the documented way: createPersistedQueryLink with generateHashes from
// the manifest, so only its ids are sent), "runtime" (ids hashed at runtime: an operation
// the manifest lacks is sent by a hash the server does not know) or "text" (no persisted
// queries link: the full text, as an app not built with the manifest sends it).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";
import {
  generatePersistedQueryIdsAtRuntime,
  generatePersistedQueryIdsFromManifest,
} from "@apollo/persisted-query-lists";

const spec = JSON.parse(process.argv[2]);
const manifest = JSON.parse(readFileSync(spec.manifest, "utf8"));
const requests = [];

// What went over the wire: the URL of each request (a GET carries its parameters there)
// and the body of a POST.
async function recordingFetch(input, init = {}) {
  requests.push({
    method: init.method ?? "GET",
    url: String(input),
    body: typeof init.body === "string" ? init.body : null,
  });
  return fetch(input, init);
}

function httpLink() {
  return new HttpLink({
    uri: spec.url,
    useGETForQueries: true,
    fetch: recordingFetch,
    headers: spec.token ? { authorization: `Bearer ${spec.token}` } : {},
  });
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const links = {
  manifest: () =>
    ApolloLink.from([
      createPersistedQueryLink(
        generatePersistedQueryIdsFromManifest({ loadManifest: () => manifest }),
      ),
      httpLink(),
    ]),
  runtime: () =>
    ApolloLink.from([
      createPersistedQueryLink(generatePersistedQueryIdsAtRuntime({ sha256 })),
      httpLink(),
    ]),
  text: () => httpLink(),
};

const results = [];
for (const operation of spec.operations) {
  const client = new ApolloClient({ link: links[operation.link](), cache: new InMemoryCache() });
  const options = {
    variables: operation.variables ?? {},
    errorPolicy: "all",
    fetchPolicy: "no-cache",
  };
  const document = gql(operation.query);
  const first = requests.length;
  try {
    const result =
      operation.type === "mutation"
        ? await client.mutate({ mutation: document, ...options })
        : await client.query({ query: document, ...options });
    results.push({
      name: operation.name,
      link: operation.link,
      data: result.data ?? null,
      errors: result.error?.errors ?? (result.error ? [{ message: String(result.error) }] : null),
      requests: requests.slice(first),
    });
  } catch (error) {
    results.push({
      name: operation.name,
      link: operation.link,
      data: null,
      errors: error?.errors ?? null,
      thrown: String(error),
      requests: requests.slice(first),
    });
  }
  client.stop();
}
process.stdout.write(`${JSON.stringify({ results })}\n`);
