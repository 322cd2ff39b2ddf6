// graphql-yoga as its docs set it up for production: its parse and validation caches on,
// GraphiQL and request logging off.
import { createServer } from "node:http";
import { createSchema, createYoga } from "graphql-yoga";
import { port, resolvers, typeDefs } from "./schema.mjs";

const yoga = createYoga({
  schema: createSchema({ typeDefs, resolvers }),
  graphiql: false,
  logging: false,
});
createServer(yoga).listen(port, "127.0.0.1");
