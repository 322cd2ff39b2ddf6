from gql_api.ops.cli import main

main()
