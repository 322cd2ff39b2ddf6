"""Thin async resolvers: read arguments, call the service, map records to GraphQL types."""
