"""gql-api: an async GraphQL API for posts on SQLite, DynamoDB, Firestore or Cosmos DB."""

__version__ = "0.1.0"
