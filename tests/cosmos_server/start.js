// The local Cosmos DB server of the store tests: @vercel/cosmosdb-server over HTTP on
// 127.0.0.1, with its connections kept alive, and three differences from Cosmos DB mended:
// - reading a missing item crashes its handler (HTTP 500) where Cosmos DB answers 404;
// - the change feed is not served: change-feed.js serves it (LatestVersion mode; see there
//   what was verified against which SDK calls);
// - a request on a resource whose owner is missing (an item, a query or a partition key
//   range of a container that does not exist or whose database does not; a container of a
//   database that does not exist) gets a bare 404, where Cosmos DB answers 404 with the
//   sub-status 1003 (OWNER_RESOURCE_NOT_FOUND, header x-ms-substatus): the one thing
//   that tells "no such item" from "no such container" on a point read or write.
// Usage: node start.js HOST PORT
"use strict";

const handlers = "@vercel/cosmosdb-server/lib/handler/";
const OWNER_RESOURCE_NOT_FOUND = "1003";

// Before the owner checks below wrap read-documents: a change feed read of a missing
// container is answered 404/1003 like any other read.
require("./change-feed");

const readDocument = require(`${handlers}read-document`);
const readDocumentAsShipped = readDocument.default;
readDocument.default = (account, req, res, params) => {
  try {
    return readDocumentAsShipped(account, req, res, params);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error; // the missing item's "data" is undefined
    res.statusCode = 404;
    return {
      code: "NotFound",
      message: "Entity with the specified id does not exist in the system.",
    };
  }
};

// The handlers of the resources in a container (their owner: the container), and of the
// containers in a database (their owner: the database).
const IN_A_CONTAINER = [
  "read-document",
  "read-documents",
  "create-document",
  "upsert-document",
  "replace-document",
  "patch-document",
  "delete-document",
  "query-documents",
  "batch-documents",
  "read-partition-key-ranges",
];
const IN_A_DATABASE = [
  "read-collection",
  "read-collections",
  "create-collection",
  "replace-collection",
  "delete-collection",
  "query-collections",
];

function ownerExists(account, { dbId, collId }, level) {
  const database = account.database(dbId);
  if (!database.read()) return false;
  return level === "database" || Boolean(database.collection(collId).read());
}

function checkOwner(name, level) {
  const handler = require(`${handlers}${name}`);
  const original = handler.default;
  handler.default = (account, req, res, params) => {
    if (ownerExists(account, params, level)) return original(account, req, res, params);
    res.statusCode = 404;
    res.setHeader("x-ms-substatus", OWNER_RESOURCE_NOT_FOUND);
    return {
      code: "NotFound",
      message: 'Message: {"Errors":["Owner resource does not exist"]}',
    };
  };
}
for (const name of IN_A_CONTAINER) checkOwner(name, "container");
for (const name of IN_A_DATABASE) checkOwner(name, "database");

// Loaded after the patches: the route table reads the handlers when it is built.
const { createHttpServer } = require("@vercel/cosmosdb-server");

const [host, port] = process.argv.slice(2);
const server = createHttpServer({ keepAlive: true }).listen(Number(port), host, () => {
  console.log(`cosmosdb-server ready at http://${host}:${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
