"""The store goes away while traffic runs, then comes back (issue 11 d).

A real ``gql-api serve`` process with ``GQL_API_STORE_TIMEOUT`` set low serves a few
clients reading and writing without pause. Its store then goes away:

- DynamoDB, Firestore, Cosmos DB, stopped: the test's own local server (not the
  session's shared one) is stopped, and later started again on the same port. These
  servers keep their data in memory, so it is lost on restart: as an operator would
  after losing a database, the test runs ``gql-api provision``, and the app must
  recover by itself, without a restart.
- The same servers, paused (SIGSTOP, later SIGCONT): connections are accepted and never
  answered, the way a hung database behaves, so only ``GQL_API_STORE_TIMEOUT`` ends
  each request. Resumed, the server has all its data.
- SQLite has no server. Its honest outage is another process holding the database's
  write lock (a sqlite3 shell in a transaction, a backup tool): writes wait for it and
  must fail with ``STORE_UNAVAILABLE`` within the timeout. Reads keep working, since in
  WAL mode no writer ever blocks a reader (and no other process can lock readers out
  while the server holds the database open), so ``/healthz``, which asks whether the
  store answers, rightly stays 200. Releasing the lock is the recovery; the data stays.
- The memory store is not parametrized here: it lives inside the server process and
  has no server or file that could go away without the app going too.

Throughout, every request must end (a hang guard far above the store timeout), with
HTTP 200 and either data or only the error codes an outage explains, and no stack
trace in any answer. Every request sent while the store is gone is answered within the
timeout: at most ``OUTAGE_ANSWER_SECONDS`` (a request makes up to two store calls, each
bounded by the store timeout; the rest is slack for a loaded CI machine, so this bound
catches a request that waits for the outage to end, not a slow one).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql_api.app import create_app
from gql_api.stores.base import PostStore
from tests.conftest import COSMOS_KEY, FIRESTORE_PROJECT
from tests.helpers import DEV_SECRET, NO_RATE_LIMITS, cli_env, run_cli
from tests.reliability.conftest import error_codes, gql, settings_for, token_for
from tests.servers import COSMOS_SERVER, FIRESTORE_JAR, gql_api_server, restartable_server

# Every store but memory (see the module's docstring), each in the ways it can fail.
OUTAGES = [
    ("sqlite", "write-locked"),
    *(
        (store, way)
        for store in ("dynamodb", "firestore", "cosmos")
        for way in ("stopped", "paused")
    ),
]
STORE_TIMEOUT_SECONDS = 2
# A request still unanswered after this has hung: many times the store timeout.
HANG_GUARD_SECONDS = 30
# A request sent during the outage is answered within this: two store calls (a read,
# then the write) each bounded by the store timeout, and generous slack. Not a speed
# test: a request that is only answered once the store is back takes far longer.
OUTAGE_ANSWER_SECONDS = 2 * STORE_TIMEOUT_SECONDS + 3
SCENARIO_SECONDS = 180
WORKERS = 4
ENOUGH = 6  # outcomes of a kind to see before a phase is over

CREATE = """
mutation Create($content: String!) {
  createPost(input: {content: $content, tags: ["outage"]}) { id version }
}"""
READ = "query Read($id: ID!) { post(id: $id) { id content version } }"
UPDATE = """
mutation Update($id: ID!, $content: String!) {
  updatePost(id: $id, input: {content: $content}) { id version }
}"""
FEED = "query Feed($tag: String) { posts(first: 5, tag: $tag) { nodes { id } } }"
WRITES = {"create", "update"}


@dataclass
class Outage:
    """How the store goes away and comes back, and what a restart keeps."""

    store: str
    env: dict[str, str]
    keeps_data: bool
    writes_only: bool  # reads keep working through it (SQLite in WAL mode)
    begin: Callable[[], None]  # run in a thread: the store goes away
    end: Callable[[], None]  # it is back (and provisioned, when it lost everything)


@dataclass
class Outcome:
    phase: str  # when the request was sent
    ended: str  # when its answer came
    operation: str
    status: int
    codes: list[str]
    data: Any
    seconds: float
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.codes


def base_env(tmp_path: Path, **values: str) -> dict[str, str]:
    return cli_env(
        GQL_API_DEV_SECRET=DEV_SECRET,
        GQL_API_SQLITE_PATH=str(tmp_path / "data" / "gql-api.db"),
        GQL_API_STORE_TIMEOUT=str(STORE_TIMEOUT_SECONDS),
        GQL_API_LOG_LEVEL="WARNING",
        **NO_RATE_LIMITS,
        **values,
    )


@contextmanager
def sqlite_outage(tmp_path: Path) -> Iterator[Outage]:
    env = base_env(tmp_path, GQL_API_STORE="sqlite")
    database = Path(env["GQL_API_SQLITE_PATH"])
    holder: list[sqlite3.Connection] = []

    def begin() -> None:
        # This test process is not the server's: its lock is another process's lock.
        blocker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        holder.append(blocker)

    def end() -> None:
        blocker = holder.pop()
        blocker.execute("ROLLBACK")
        blocker.close()

    try:
        yield Outage("sqlite", env, keeps_data=True, writes_only=True, begin=begin, end=end)
    finally:
        for blocker in holder:
            blocker.close()


@contextmanager
def server_outage(store: str, way: str, tmp_path: Path) -> Iterator[Outage]:
    if store == "firestore" and not FIRESTORE_JAR.exists():
        raise RuntimeError(f"the Firestore emulator is missing: {FIRESTORE_JAR}")
    if store == "cosmos" and not (COSMOS_SERVER / "node_modules").exists():
        raise RuntimeError("the local Cosmos DB server is not installed: run `make test`")
    with restartable_server(store) as (server, address):
        if store == "dynamodb":
            env = base_env(
                tmp_path,
                GQL_API_STORE="dynamodb",
                GQL_API_DYNAMODB_ENDPOINT=address,
                GQL_API_DYNAMODB_TABLE="gql-api-outage",
                AWS_ACCESS_KEY_ID="test",
                AWS_SECRET_ACCESS_KEY="test",
                AWS_REGION="us-east-1",
            )
        elif store == "firestore":
            env = base_env(
                tmp_path,
                GQL_API_STORE="firestore",
                GQL_API_FIRESTORE_PROJECT=FIRESTORE_PROJECT,
                FIRESTORE_EMULATOR_HOST=address,
            )
        else:
            env = base_env(
                tmp_path,
                GQL_API_STORE="cosmos",
                GQL_API_COSMOS_URL=address,
                GQL_API_COSMOS_KEY=COSMOS_KEY,
                GQL_API_COSMOS_DATABASE=f"outage{uuid.uuid4().hex[:8]}",
                GQL_API_COSMOS_VERIFY_TLS="false",
            )

        def provision() -> None:
            result = run_cli(["provision"], env, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr

        def end() -> None:
            server.start()  # same command, same port
            provision()  # the server lost everything: what an operator runs after that

        provision()
        if way == "paused":  # a hung server: resumed, it has all its data
            yield Outage(
                store,
                env,
                keeps_data=True,
                writes_only=False,
                begin=server.pause,
                end=server.resume,
            )
        else:
            yield Outage(
                store, env, keeps_data=False, writes_only=False, begin=server.stop, end=end
            )


@pytest.fixture(params=OUTAGES, ids=[f"{store}-{way}" for store, way in OUTAGES])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    store, way = request.param
    if store == "sqlite":
        with sqlite_outage(tmp_path) as made:
            yield made
    else:
        with server_outage(store, way, tmp_path) as made:
            yield made


class Traffic:
    """Clients that read and write without pause; every answer is kept with its phase."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self.health: list[tuple[str, int]] = []
        self.waiting_for = ""
        self._stop = asyncio.Event()
        self._token = token_for("outage-user")

    async def call(self, operation: str, query: str, variables: dict[str, Any]) -> Outcome:
        phase = self.phase  # the phase the request started in
        started = time.monotonic()
        try:
            response = await self.http.post(
                f"{self.url}/graphql",
                json={"query": query, "variables": variables},
                headers={"authorization": f"Bearer {self._token}"},
            )
        except httpx.TimeoutException:
            pytest.fail(f"{operation} hung for {HANG_GUARD_SECONDS}s in phase {phase}")
        body = response.json()
        errors = body.get("errors") or []
        outcome = Outcome(
            phase=phase,
            ended=self.phase,
            operation=operation,
            status=response.status_code,
            codes=[e.get("extensions", {}).get("code") for e in errors],
            data=body.get("data"),
            seconds=time.monotonic() - started,
            messages=[e.get("message", "") for e in errors],
        )
        self.outcomes.append(outcome)
        return outcome

    async def worker(self, number: int) -> None:
        own: str | None = None
        turn = 0
        while not self._stop.is_set():
            turn += 1
            created = await self.call("create", CREATE, {"content": f"w{number} t{turn}"})
            if created.ok:
                own = created.data["createPost"]["id"]
            if own is not None:
                await self.call("read", READ, {"id": own})
                await self.call("update", UPDATE, {"id": own, "content": f"w{number} u{turn}"})
            await self.call("feed", FEED, {"tag": "outage"})

    async def healthz(self) -> int:
        phase = self.phase
        try:
            response = await self.http.get(f"{self.url}/healthz")
        except httpx.TimeoutException:
            pytest.fail(f"/healthz hung for {HANG_GUARD_SECONDS}s in phase {phase}")
        self.health.append((phase, response.status_code))
        return response.status_code

    def count(self, phase: str, *, ok: bool, operations: set[str] | None = None) -> int:
        return sum(
            1
            for o in self.outcomes
            if o.phase == phase and o.ok == ok and (operations is None or o.operation in operations)
        )

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (polling /healthz too) until ``condition()``; the scenario bounds it."""
        self.waiting_for = what
        while not condition():
            await self.healthz()
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


async def test_requests_fail_fast_while_the_store_is_gone_and_recover_without_restart(
    outage: Outage, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"  # kept, and printed when the scenario fails
    try:
        with gql_api_server(outage.env, log_path=log) as (url, server):
            async with httpx.AsyncClient(timeout=httpx.Timeout(HANG_GUARD_SECONDS)) as http:
                traffic = Traffic(http, url)
                try:
                    async with asyncio.timeout(SCENARIO_SECONDS):
                        await warm_up(traffic)
                        seed_id = await run_outage(traffic, outage)
                        seed_now = await traffic.call("read", READ, {"id": seed_id})
                except TimeoutError:
                    pytest.fail(f"no progress in {SCENARIO_SECONDS}s: {traffic.waiting_for}")
            # The same server process served it all: it recovered without a restart.
            assert server.poll() is None
        print(summary(traffic))  # shown when the test fails
        check_outcomes(traffic, outage)
        if outage.keeps_data:
            assert seed_now.ok and seed_now.data["post"]["content"] == "before the outage"
        else:  # the restarted server lost it: gone, and said so plainly
            assert seed_now.ok and seed_now.data["post"] is None
    except BaseException:
        print(f"--- the server's log ({log}) ---\n{log.read_text()[-6000:]}")
        raise


async def warm_up(traffic: Traffic) -> None:
    """Until the store answers every kind of request in a row: a server just started
    (a JVM emulator above all) first answers slowly, past the short store timeout, and
    the scenario's "before" phase must see a store that works."""
    traffic.waiting_for = "the store warms up"
    streak = 0
    while streak < 3:
        created = await traffic.call("create", CREATE, {"content": "warm-up"})
        read = (
            await traffic.call("read", READ, {"id": created.data["createPost"]["id"]})
            if (created.ok)
            else created
        )
        feed = await traffic.call("feed", FEED, {"tag": "warm-up"})
        streak = streak + 1 if created.ok and read.ok and feed.ok else 0
    traffic.outcomes.clear()  # not part of the scenario


async def run_outage(traffic: Traffic, outage: Outage) -> str:
    """Traffic before, during and after the outage; the id of a post from before."""
    seed = await traffic.call("create", CREATE, {"content": "before the outage"})
    assert seed.ok, seed
    assert await traffic.healthz() == 200
    workers = [asyncio.create_task(traffic.worker(n)) for n in range(WORKERS)]
    try:
        await traffic.until(lambda: traffic.count("before", ok=True) >= ENOUGH, "traffic flows")
        # While the store goes away (begin takes time), answers may go either way: only a
        # request sent and answered before it began must have worked.
        traffic.phase = "stopping"
        await asyncio.to_thread(outage.begin)
        traffic.phase = "outage"
        failing = WRITES if outage.writes_only else None
        await traffic.until(
            lambda: (
                traffic.count("outage", ok=False, operations=failing) >= ENOUGH
                and len([h for h in traffic.health if h[0] == "outage"]) >= 2
            ),
            "requests failing during the outage",
        )
        traffic.phase = "recovering"
        await asyncio.to_thread(outage.end)
        await traffic.until(lambda: traffic.health[-1][1] == 200, "/healthz 200 again")
        traffic.phase = "after"
        await traffic.until(
            lambda: all(
                traffic.count("after", ok=True, operations={op}) >= ENOUGH
                for op in ("create", "read", "update", "feed")
            ),
            "every operation working again",
        )
    finally:
        traffic.stop()
        results = await asyncio.gather(*workers, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    seed_id: str = seed.data["createPost"]["id"]
    return seed_id


def check_outcomes(traffic: Traffic, outage: Outage) -> None:
    """Each answer against what the phases it was sent and answered in explain."""
    lost = set() if outage.keeps_data else {"NOT_FOUND"}
    for o in traffic.outcomes:
        assert o.status == 200, o
        for message in o.messages:
            assert "Traceback" not in message and ".py" not in message, o
        if o.phase == "outage":  # sent while the store was gone: answered within the timeout
            assert o.seconds <= OUTAGE_ANSWER_SECONDS, o
        phases = {o.phase, o.ended}
        if phases == {"before"}:
            assert o.ok, o
        elif phases == {"outage"}:
            if o.operation in WRITES or not outage.writes_only:
                assert o.codes == ["STORE_UNAVAILABLE"], o
            else:  # SQLite in WAL mode: a writer never blocks a reader
                assert o.ok, o
        elif o.phase == "after":
            # A restarted in-memory server lost the posts written before it went away:
            # NOT_FOUND (or null) for them, nothing else.
            assert set(o.codes) <= lost, o
        else:  # sent or answered while the store went away or came back
            assert set(o.codes) <= {"STORE_UNAVAILABLE"} | lost, o
    health_in_outage = {status for phase, status in traffic.health if phase == "outage"}
    assert health_in_outage == ({200} if outage.writes_only else {503}), traffic.health
    assert all(status == 200 for phase, status in traffic.health if phase == "after")


DELETE = "mutation Delete($id: ID!) { deletePost(id: $id) { id } }"


@pytest.mark.parametrize("store_name", ["dynamodb", "cosmos"])
async def test_a_server_that_lost_its_tables_is_store_unavailable(
    store_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Between a restarted in-memory server and ``gql-api provision``: the store answers,
    but its table (DynamoDB) or database (Cosmos DB) is not there. That is the store
    being unavailable, as for DynamoDB from the start; Cosmos DB's 404s used to escape
    as INTERNAL_SERVER_ERROR, and /healthz as a bare 500. A point read, update or delete
    answers STORE_UNAVAILABLE too, never a null post or NOT_FOUND: Cosmos DB tells a
    missing container from a missing item (404 sub-status 1003), and a client told that
    a post is gone may drop it. Both before the first provisioning and after a table or
    database the app had been using went away."""
    store: PostStore
    lose_it: Callable[[], Awaitable[Any]]  # what a restarted in-memory server does
    if store_name == "dynamodb":
        from gql_api.stores.dynamodb import DynamoDBStore

        dynamodb = store = DynamoDBStore(
            f"lost{uuid.uuid4().hex[:8]}", endpoint_url=request.getfixturevalue("moto_url")
        )

        def lose_it() -> Awaitable[Any]:
            assert dynamodb._client is not None
            return dynamodb._client.delete_table(TableName=dynamodb.table)

    else:
        from gql_api.stores.cosmos import CosmosStore

        cosmos = store = CosmosStore(
            request.getfixturevalue("cosmos_url"),
            key=COSMOS_KEY,
            database=f"never{uuid.uuid4().hex[:8]}",
            verify_tls=False,
        )

        def lose_it() -> Awaitable[Any]:
            assert cosmos._client is not None
            return cosmos._client.delete_database(cosmos.database_name)

    app = create_app(settings_for(tmp_path), store=store)
    async with asyncio.timeout(60), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            token = token_for("alice")

            async def all_unavailable(post_id: str) -> None:
                health = await client.get("/healthz")
                assert (health.status_code, health.json()["status"]) == (503, "unavailable")
                feed = await gql(client, "{ posts { nodes { id } } }")
                assert error_codes(feed) == ["STORE_UNAVAILABLE"], feed
                created = await gql(client, CREATE, {"content": "x"}, token=token)
                assert error_codes(created) == ["STORE_UNAVAILABLE"], created
                profile = await gql(client, '{ profile(userId: "alice") { nickname } }')
                assert error_codes(profile) == ["STORE_UNAVAILABLE"], profile
                read = await gql(client, READ, {"id": post_id})
                assert error_codes(read) == ["STORE_UNAVAILABLE"], read
                assert read.get("data") in (None, {"post": None}), read
                update = await gql(client, UPDATE, {"id": post_id, "content": "y"}, token=token)
                assert error_codes(update) == ["STORE_UNAVAILABLE"], update
                delete = await gql(client, DELETE, {"id": post_id}, token=token)
                assert error_codes(delete) == ["STORE_UNAVAILABLE"], delete

            await all_unavailable("ab" * 16)  # never provisioned
            await store.provision()
            created = await gql(client, CREATE, {"content": "kept"}, token=token)
            assert not error_codes(created), created
            post_id = created["data"]["createPost"]["id"]
            read = await gql(client, READ, {"id": post_id})
            assert read["data"]["post"]["content"] == "kept", read
            await lose_it()
            await all_unavailable(post_id)


def summary(traffic: Traffic) -> str:
    """Per phase: answers by code, and the slowest (for a failure's report)."""
    lines = []
    for phase in ("before", "stopping", "outage", "recovering", "after"):
        mine = [o for o in traffic.outcomes if o.phase == phase]
        codes = Counter(",".join(o.codes) or "ok" for o in mine)
        slowest = max((o.seconds for o in mine), default=0.0)
        health = Counter(status for p, status in traffic.health if p == phase)
        lines.append(f"{phase}: {dict(codes)}, slowest {slowest:.2f}s, /healthz {dict(health)}")
    return "\n".join(lines)
