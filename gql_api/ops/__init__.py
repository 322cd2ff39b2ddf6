"""Operating the service: the command line and `gql-api doctor`."""
