#!/usr/bin/env bash
# Copies the pinned browser builds of GraphiQL and React into the Python package.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../gql_api/http/static/graphiql"
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
mkdir -p "$out"
cp node_modules/graphiql/graphiql.min.js node_modules/graphiql/graphiql.min.css "$out/"
cp node_modules/react/umd/react.production.min.js "$out/"
cp node_modules/react-dom/umd/react-dom.production.min.js "$out/"
for package in graphiql react react-dom; do
  printf '%s %s\n' "$package" "$(node -p "require('./node_modules/$package/package.json').version")"
done > "$out/VERSIONS"
cat "$out/VERSIONS"
