"""GraphQL over HTTP: the endpoint, persisted queries, rate limits, `gql-api serve`'s server."""
