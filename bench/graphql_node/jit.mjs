// graphql-jit behind node:http: each distinct query is parsed, validated and compiled
// once (kept by its text), then runs as the compiled function, whose stringify writes
// the JSON.
import { createServer } from "node:http";
import { parse, validate } from "graphql";
import { compileQuery, isCompiledQuery } from "graphql-jit";
import { makeExecutableSchema } from "./executable.mjs";
import { port, resolvers, typeDefs } from "./schema.mjs";

const schema = makeExecutableSchema(typeDefs, resolvers);
const compiled = new Map();

function compiledFor(query) {
  let entry = compiled.get(query);
  if (entry === undefined) {
    const document = parse(query);
    const errors = validate(schema, document);
    entry = errors.length ? { errors } : compileQuery(schema, document);
    compiled.set(query, entry);
  }
  return entry;
}

createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", async () => {
    let body = "{}";
    if (request.method === "POST") body = Buffer.concat(chunks).toString() || "{}";
    const { query = "{ __typename }", variables } = JSON.parse(body);
    const entry = compiledFor(query);
    response.setHeader("content-type", "application/json");
    if (!isCompiledQuery(entry)) {
      response.statusCode = 400;
      response.end(JSON.stringify({ errors: entry.errors.map((e) => ({ message: e.message })) }));
      return;
    }
    const result = await entry.query(undefined, undefined, variables || {});
    response.end(entry.stringify(result));
  });
}).listen(port, "127.0.0.1");
