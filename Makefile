# One entry point for people and CI. Everything is installed into .venv by these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test check lint typecheck unit fuzz schema constraints bench bench-coldstart graphiql-assets chromium podman clean

# constraints.txt pins every package to the versions the suite last passed with (the AWS
# SDKs pin each other tightly; unpinned, pip's resolver can backtrack for a very long time).
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Serving needs only the package itself (the embedded store): no SDKs, no test tools.
$(BIN)/.installed-serve: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

serve: $(BIN)/.installed-serve
	$(BIN)/gql-api serve

test: lint typecheck unit

# The fast tier: lint, types, and every test that needs no local server and is not slow
# by nature (rules, HTTP, schema, limits, APQ on the memory and SQLite stores). About a
# minute; `make test` runs all of it and the rest.
check: lint typecheck
	$(BIN)/pytest -q -n 2 -m "not servers and not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint deploy/aws/template.yaml

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The local Cosmos DB server the tests start (an npm package, pinned by its lock file).
COSMOS_SERVER := tests/cosmos_server
$(COSMOS_SERVER)/node_modules/.installed: $(COSMOS_SERVER)/package-lock.json
	npm ci --prefix $(COSMOS_SERVER) --no-audit --no-fund --loglevel=error
	touch $@

# Azurite, Microsoft's storage emulator: the local Azure Blob server of the image tests.
AZURITE := tests/azurite
$(AZURITE)/node_modules/.installed: $(AZURITE)/package-lock.json
	npm ci --prefix $(AZURITE) --no-audit --no-fund --loglevel=error
	touch $@

# graphql-http's GraphQL-over-HTTP audits, run by the tests against a live server.
GRAPHQL_HTTP := tests/graphql_http
$(GRAPHQL_HTTP)/node_modules/.installed: $(GRAPHQL_HTTP)/package-lock.json
	npm ci --prefix $(GRAPHQL_HTTP) --no-audit --no-fund --loglevel=error
	touch $@

# The real subscription clients the tests drive: graphql-ws (over ws) and graphql-sse.
LIVE_CLIENTS := tests/live_clients
$(LIVE_CLIENTS)/node_modules/.installed: $(LIVE_CLIENTS)/package-lock.json
	npm ci --prefix $(LIVE_CLIENTS) --no-audit --no-fund --loglevel=error
	touch $@

# Apollo Client and Apollo's manifest generator, driven by the trusted documents test.
APOLLO_CLIENT := tests/apollo_client
$(APOLLO_CLIENT)/node_modules/.installed: $(APOLLO_CLIENT)/package-lock.json
	npm ci --prefix $(APOLLO_CLIENT) --no-audit --no-fund --loglevel=error
	touch $@

# Debian's nginx, the shared cache in front of `gql-api serve` in tests/test_cdn_cache.py:
# the package unpacked, not installed, so no service starts and nothing binds port 80.
NGINX := tests/cdn/nginx/usr/sbin/nginx
$(NGINX):
	mkdir -p tests/cdn
	cd tests/cdn && (apt-get download -qq nginx 2>/dev/null || \
		(apt-get update -qq && apt-get download -qq nginx 2>/dev/null))
	cd tests/cdn && dpkg-deb -x nginx_*.deb nginx && rm nginx_*.deb
	test -x $@

# Debian's Chromium, for the GraphiQL browser tests (driven by Playwright, no download).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# Debian's podman and mmdebstrap, for the Cloud Run image test (a base image assembled
# from Debian's packages: no image registry is needed).
podman:
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends podman mmdebstrap uidmap >/dev/null)

unit: $(BIN)/.installed $(COSMOS_SERVER)/node_modules/.installed \
		$(AZURITE)/node_modules/.installed $(GRAPHQL_HTTP)/node_modules/.installed \
		$(LIVE_CLIENTS)/node_modules/.installed $(APOLLO_CLIENT)/node_modules/.installed \
		$(NGINX) chromium podman
	$(BIN)/pytest

# schemathesis on every store for FUZZ_SECONDS each, with a new seed (printed) each time:
# longer than the run in `make test`, and not part of it. FUZZ_SEED=N repeats a run.
FUZZ_SECONDS ?= 300
FUZZ_SEED ?= random
fuzz: $(BIN)/.installed $(COSMOS_SERVER)/node_modules/.installed
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest -s tests/test_schemathesis.py

bench-coldstart: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/coldstart.py

# Every benchmark, one after another. The HTTP bench's load generator is Debian's wrk;
# its Node baselines (graphql-yoga, graphql-jit) are pinned in bench/graphql_node.
bench: bench-coldstart
	command -v wrk >/dev/null || apt-get install -y --no-install-recommends wrk
	npm ci --prefix bench/dynalite --no-audit --no-fund --loglevel=error
	npm ci --prefix bench/graphql_node --no-audit --no-fund --loglevel=error
	$(BIN)/python bench/http_bench.py
	$(BIN)/python bench/request_floor.py
	$(BIN)/python bench/coldstart_platforms.py
	$(BIN)/python bench/lambda_request.py
	$(BIN)/python bench/page_depth.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/sqlite_durability.py
	$(BIN)/python bench/live_fanout.py
	$(MAKE) $(NGINX)
	$(BIN)/python bench/cdn_cache.py

# Refresh GraphiQL and React (pinned in assets/graphiql/package.json) inside the package.
graphiql-assets:
	assets/graphiql/copy.sh

schema: $(BIN)/.installed
	$(BIN)/gql-api schema > schema.graphql

# After adding a dependency: resolve it against the current pins, run `make test`, commit.
constraints:
	rm -rf $(VENV).lock && $(PYTHON) -m venv $(VENV).lock
	$(VENV).lock/bin/python -m pip install --quiet --upgrade pip
	$(VENV).lock/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(VENV).lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf $(VENV).lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
