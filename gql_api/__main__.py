from gql_api.cli import main

main()
