// Runs graphql-http's server audits against a live gql-api and prints one JSON line:
// {"total": N, "errors": [...], "warnings": [...]} ("error" = a MUST, "warn" = a SHOULD).
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql
import { serverAudits } from "graphql-http";

const url = process.argv[2];
const errors = [];
const warnings = [];
let total = 0;
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  total += 1;
  const result = await audit.fn();
  if (result.status === "error") errors.push(`${audit.name}: ${result.reason}`);
  if (result.status === "warn") warnings.push(`${audit.name}: ${result.reason}`);
}
console.log(JSON.stringify({ total, errors, warnings }));
