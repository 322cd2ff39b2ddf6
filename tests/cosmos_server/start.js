// The local Cosmos DB server of the store tests: @vercel/cosmosdb-server over HTTP on
// 127.0.0.1, with its connections kept alive, and one difference from Cosmos DB mended:
// reading a missing item crashes its handler (HTTP 500) where Cosmos DB answers 404.
// Usage: node start.js HOST PORT
"use strict";

const readDocument = require("@vercel/cosmosdb-server/lib/handler/read-document");

const original = readDocument.default;
readDocument.default = (account, req, res, params) => {
  try {
    return original(account, req, res, params);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error; // the missing item's "data" is undefined
    res.statusCode = 404;
    return {
      code: "NotFound",
      message: "Entity with the specified id does not exist in the system.",
    };
  }
};

// Loaded after the patch: the route table reads the handler when it is built.
const { createHttpServer } = require("@vercel/cosmosdb-server");

const [host, port] = process.argv.slice(2);
const server = createHttpServer({ keepAlive: true }).listen(Number(port), host, () => {
  console.log(`cosmosdb-server ready at http://${host}:${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
