// Starts GraphiQL against this server's /graphql. Served by gql-api itself, like every
// other asset of the page (no CDN), under a Content-Security-Policy of its own origin.
"use strict";

const defaultQuery = `# Welcome to gql-api.
#
# Reads need no token: press the run button (or Ctrl-Enter).
#
# To write, print a token (in the folder where you ran make serve) with
#     .venv/bin/gql-api token --user alice
# and paste it into the Headers tab below, as
#     {"Authorization": "Bearer <the token>"}

query Feed {
  posts(first: 10) {
    edges {
      node { id content tags createdAt version author { userId nickname } }
    }
    pageInfo { hasNextPage endCursor }
  }
}

# mutation Write {
#   createPost(input: {content: "Hello from GraphiQL", tags: ["hello"]}) { id version }
# }
`;

const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultHeaders: "{}",
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: false,
  }),
);
