"""GraphiQL in a real browser (Debian's Chromium, headless), offline, against a live server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from gql_api.auth.dev import mint_dev_token
from gql_api.settings import Settings
from tests.helpers import DEV_SECRET, cli_env
from tests.servers import gql_api_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


def serve(tmp: Path, **settings: str) -> Any:
    env = cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp / "gql-api.db"),
        GQL_API_LOG_LEVEL="WARNING",
        **settings,
    )
    return gql_api_server(env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        raise RuntimeError("Debian's chromium is missing: `make test` installs it (apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("graphiql")) as (url, _):
        yield url


class Watch:
    """Everything the page asked for, and everything that went wrong."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.requested: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", self._response)
        page.on("request", lambda request: self.requested.append(request.url))
        # No network beyond this machine: anything else is refused and shows as a failure.
        page.route("**/*", self._only_local)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _only_local(self, route: Route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:")):
            route.continue_()
        else:
            route.abort()


def open_graphiql(browser: Browser, url: str) -> tuple[Page, Watch]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    watch = Watch(page)
    page.goto(f"{url}/graphql", wait_until="networkidle")
    page.wait_for_selector(".graphiql-container", timeout=20_000)
    page.wait_for_selector(QUERY_EDITOR, timeout=20_000)
    return page, watch


QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
# The tools pane holds the variables and the headers editors; the one shown lacks "hidden".
OPEN_TOOL_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


def set_editor(page: Page, selector: str, text: str) -> None:
    page.evaluate(
        "([selector, text]) => document.querySelector(selector).CodeMirror.setValue(text)",
        [selector, text],
    )
    page.wait_for_timeout(300)  # GraphiQL takes in an edit a moment later


def run_and_read(page: Page, expect: str) -> Any:
    """Press run until the result shows ``expect``."""
    for attempt in range(5):
        page.click(".graphiql-execute-button")
        try:
            page.wait_for_function(
                "(expect) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror"
                ".getValue() || '').includes(expect)",
                arg=expect,
                timeout=4_000,
            )
            break
        except PlaywrightTimeout:
            if attempt == 4:
                raise
    text = page.evaluate(
        "() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"
    )
    return json.loads(text)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"graphiql-{name}.png"), full_page=True)


def test_the_page_loads_offline_with_no_error(browser: Browser, live: str) -> None:
    page, watch = open_graphiql(browser, live)
    shot(page, "loaded")
    query = page.evaluate(
        "() => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()"
    )
    assert "query Feed" in query and "gql-api token" in query
    selected = page.inner_text(".graphiql-editor-tools button.active")
    assert selected.strip() == "Headers"  # the headers tab is open
    response = page.evaluate(
        "() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"
    )
    assert response == ""  # nothing went wrong while loading (introspection included)
    assert watch.problems == []
    assert all(u.startswith((live, "data:")) for u in watch.requested), watch.requested
    page.close()


def test_a_typed_query_runs_and_shows_its_result(browser: Browser, live: str) -> None:
    page, watch = open_graphiql(browser, live)
    page.click(QUERY_EDITOR)
    page.keyboard.press("Control+A")
    page.keyboard.type("{ limits { maxPageSize maxTags } }", delay=10)  # as a person types
    typed = page.evaluate(f"() => document.querySelector('{QUERY_EDITOR}').CodeMirror.getValue()")
    assert typed.replace(" ", "") == "{limits{maxPageSizemaxTags}}"
    result = run_and_read(page, "maxPageSize")
    assert result == {"data": {"limits": {"maxPageSize": 100, "maxTags": 10}}}
    shot(page, "query")
    assert watch.problems == []
    page.close()


def test_a_mutation_with_a_token_then_a_query_that_shows_it(browser: Browser, live: str) -> None:
    token = mint_dev_token(Settings(dev_secret=DEV_SECRET), DEV_SECRET, user_id="grace")
    page, watch = open_graphiql(browser, live)
    set_editor(page, OPEN_TOOL_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
    set_editor(
        page,
        QUERY_EDITOR,
        'mutation { createPost(input: {content: "typed in GraphiQL", tags: ["browser"]}) '
        "{ id authorId } }",
    )
    created = run_and_read(page, '"authorId"')
    assert created["data"]["createPost"]["authorId"] == "grace"
    set_editor(
        page,
        QUERY_EDITOR,
        '{ posts(tag: "browser") { nodes { id content } } }',
    )
    listed = run_and_read(page, "typed in GraphiQL")
    assert listed["data"]["posts"]["nodes"] == [
        {"id": created["data"]["createPost"]["id"], "content": "typed in GraphiQL"}
    ]
    shot(page, "mutation")
    assert watch.problems == []
    page.close()


def test_with_graphiql_off_a_browser_gets_the_json_error(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path, GQL_API_GRAPHIQL="false") as (url, _):
        page = browser.new_page()
        response = page.goto(f"{url}/graphql")
        assert response is not None and response.status == 400
        body = json.loads(page.inner_text("body"))
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assets = page.goto(f"{url}/graphiql/static/graphiql.min.js")
        assert assets is not None and assets.status == 404
        page.close()
