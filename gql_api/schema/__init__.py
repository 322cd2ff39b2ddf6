"""The GraphQL schema: ``root`` (Query, Mutation, the Schema), ``types`` and ``values``.

Empty on purpose: importing a value type must not build the schema (its resolvers import
those types)."""
