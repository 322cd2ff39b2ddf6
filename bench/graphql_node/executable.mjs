// An executable schema from SDL and a resolver map, with graphql-js alone (what
// graphql-tools' makeExecutableSchema does for this schema).
import { buildSchema } from "graphql";

export function makeExecutableSchema(typeDefs, resolvers) {
  const schema = buildSchema(typeDefs);
  for (const [typeName, fields] of Object.entries(resolvers)) {
    const type = schema.getType(typeName);
    for (const [fieldName, resolve] of Object.entries(fields)) {
      type.getFields()[fieldName].resolve = resolve;
    }
  }
  return schema;
}
