"""What the Azure Functions host loads from the package's root: gql-api's one HTTP
function, every route (gql_api/azure_function.py)."""

from gql_api.azure_function import app

__all__ = ["app"]
