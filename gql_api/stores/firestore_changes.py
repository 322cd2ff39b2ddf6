"""The Firestore store's change feed: a window of two listeners of the sync client (the
async one has no watch), on the posts and on the tombstones deletes leave, both ``>=`` the
window's start on a time the server sets at each write. What matched at the start is not
reported; a newer window replaces the old one every few minutes (or 5,000 documents), so
what listeners hold stays bounded; what both show is reported once. README, "The
Firestore live feed"."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gql_api.domain.records import ChangeKind, PostChange, PostRecord
from gql_api.stores.base import DatabaseUnavailable, translated

if TYPE_CHECKING:
    from google.cloud.firestore import Client

WRITTEN = "writtenAt"  # a post's field: the server's time of its last create or update
DELETIONS = "post_deletions"  # <prefix>post_deletions: one tombstone per delete
DELETED = "deletedAt"  # a tombstone's field: the server's time of the delete
EXPIRE = "expireAt"  # a tombstone's field for the TTL policy: when Firestore may drop it
TOMBSTONE_TTL = timedelta(days=1)  # far past any window: a tombstone is needed for seconds
WINDOW = 300.0  # seconds a window's listeners live before a newer window replaces them
WINDOW_DOCUMENTS = 5_000  # documents a listener may hold before it is replaced sooner
MARGIN = 500_000_000  # ns (0.5 s) a window starts before the server's time: commits in flight
OVERLAP = 2.0  # seconds an old listener may go on once the new one is current: its late changes
GRACE = 0.5  # seconds a change may wait for a posts listener that lags to pass its time
BACKLOG = 10_000  # changes a follower may lag behind before its feed is lost
HEALTH_CHECK = 1.0  # seconds between looks at whether the listeners still run
_Event = tuple[int, PostChange]  # (commit time in ns, the change)


def written() -> dict[str, Any]:
    """The field every create and update of a post adds: what the posts listener selects on."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    return {WRITTEN: SERVER_TIMESTAMP}


def tombstone(document: dict[str, Any]) -> dict[str, Any]:
    """The tombstone of a post deleted as ``document``: what subscribers filter on."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    return {**document, DELETED: SERVER_TIMESTAMP, EXPIRE: datetime.now(UTC) + TOMBSTONE_TTL}


class Listening:
    """A store's feeds and the one sync client they share, made on the first ``follow``."""

    def __init__(
        self,
        project: str | None,
        database: str | None,
        prefix: str,
        *,
        timeout: float,
        window: float,
        decode: Callable[[Any], PostRecord],
        outage: Callable[[Exception], str | None],
    ) -> None:
        self._project, self._database, self.prefix = project, database, prefix
        self.timeout, self.window, self.decode, self.outage = timeout, window, decode, outage
        self._client: Client | None = None
        self._making = asyncio.Lock()
        self.feeds: set[Feed] = set()

    async def follow(self) -> Feed:
        feed = Feed(self, await self._made())
        self.feeds.add(feed)
        try:
            with translated(self.outage):
                await feed.start()
        except BaseException:
            await feed.aclose()
            raise
        return feed

    async def close(self) -> None:
        for feed in list(self.feeds):
            feed.lose("the store is closed")
            await feed.halted()
        self.feeds.clear()
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(_close, client)

    async def _made(self) -> Client:
        async with self._making:
            if self._client is None:
                from google.cloud import firestore

                try:  # in a thread: finding the credentials may ask a metadata server
                    self._client = await asyncio.to_thread(
                        firestore.Client, project=self._project, database=self._database
                    )
                except Exception as error:
                    message = f"cannot create the Firestore client: {error}"
                    raise DatabaseUnavailable(message) from error
            return self._client


@dataclasses.dataclass(eq=False)
class _Listener:
    collection: str
    deletions: bool  # the tombstones' listener, else the posts'
    replay: bool  # whether its first snapshot holds changes (a later window's) or the past
    watch: Any = None
    current: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    read_time: int = 0  # ns: the server's time of its latest snapshot
    stopped: bool = False
    idle_checks: int = 0  # health checks in a row that found its stream down


class Feed:
    """One follower: its windows of listeners, the changes they found, what it reported."""

    def __init__(self, listening: Listening, client: Client) -> None:
        self._listening, self._client = listening, client
        self._posts, self._deletions = f"{listening.prefix}posts", listening.prefix + DELETIONS
        self._timeout, self._window = listening.timeout, listening.window
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[PostChange | None] = asyncio.Queue(BACKLOG)
        self.windows: list[list[_Listener]] = []
        self.windows_opened = 0
        self._floor = 0  # ns: what was committed up to the feed's start is not a change
        self._last: dict[str, int] = {}  # post id -> commit time of the last change reported
        self._held: list[tuple[float, _Event]] = []  # (deadline, event) not reported yet
        self._rotate_soon = asyncio.Event()
        self._lost: str | None = None
        self._closed = False
        self._rotating: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        first = await self._open_window(await self._server_time() - MARGIN, replay=False)
        self._floor = max(listener.read_time for listener in first)
        self._rotating = self._loop.create_task(self._rotate_forever())

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> PostChange:
        if self._closed:
            raise StopAsyncIteration
        change = await self._queue.get()
        if change is None:
            self._queue.put_nowait(None)  # every later call is told too
            if self._closed:
                raise StopAsyncIteration
            raise DatabaseUnavailable(self._lost or "the change feed was lost")
        return change

    async def aclose(self) -> None:
        """Stop every listener and the window restarts, begun to iterate or not."""
        if not self._closed:
            self._closed = True
            self._listening.feeds.discard(self)
            self._wake()
        await self.halted()

    async def halted(self) -> None:
        """Once the feed is lost or closed: wait until its listeners are stopped."""
        if self._rotating is not None:
            self._rotating.cancel()
            await asyncio.gather(self._rotating, return_exceptions=True)
        if self._stopping is not None:
            await self._stopping
        await self._stop(self._take_windows())

    def lose(self, reason: str) -> None:
        """End the feed: the follower is told once it has read what is queued."""
        if self._lost is not None or self._closed:
            return
        self._lost = reason
        self._wake()
        if self._rotating is not None and self._rotating is not asyncio.current_task():
            self._rotating.cancel()
        self._stopping = self._loop.create_task(self._stop(self._take_windows()))

    # --- listeners (their callbacks run in the SDK's threads) ------------------------------

    async def _open_window(self, start: int, *, replay: bool) -> list[_Listener]:
        from google.cloud.firestore import FieldFilter

        window = [_Listener(self._posts, False, replay), _Listener(self._deletions, True, replay)]
        self.windows.append(window)
        self.windows_opened += 1
        for listener in window:
            field = DELETED if listener.deletions else WRITTEN
            query = self._client.collection(listener.collection).where(
                filter=FieldFilter(field, ">=", _moment(start))
            )
            listener.watch = query.on_snapshot(functools.partial(self._snapshot, listener))
            # The SDK sorts its whole result at every snapshot (0.16 s at 5,000 documents),
            # for an order this feed does not use.
            listener.watch._comparator = lambda first, second: 0
        try:
            async with asyncio.timeout(self._timeout):
                for listener in window:
                    await listener.current.wait()
        except TimeoutError:
            raise DatabaseUnavailable("Firestore: a listener had no first snapshot") from None
        return window

    def _snapshot(
        self, listener: _Listener, documents: list[Any], changes: list[Any], read_time: Any
    ) -> None:
        try:
            events = [
                self._event(listener, c.document) for c in changes if c.type.name != "REMOVED"
            ]
            arrived = functools.partial(
                self._received, listener, len(documents), events, _nanos(read_time)
            )
        except Exception as error:  # noqa: BLE001 - a document it cannot read: told, not hung
            arrived = functools.partial(self.lose, f"Firestore: an unreadable change: {error!r}")
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody follows any more
            self._loop.call_soon_threadsafe(arrived)

    def _event(self, listener: _Listener, document: Any) -> _Event:
        post = self._listening.decode(document)
        if listener.deletions:
            change = PostChange(ChangeKind.DELETED, dataclasses.replace(post, etag=None))
        else:  # a post may enter a window as new to it and yet be an update
            kind = ChangeKind.CREATED if post.version == 1 else ChangeKind.UPDATED
            change = PostChange(kind, post)
        return _nanos(document.update_time), change

    # --- on the loop: order, de-duplicate, report ------------------------------------------

    def _received(
        self, listener: _Listener, size: int, events: list[_Event], read_time: int
    ) -> None:
        if listener.stopped or self._lost is not None or self._closed:
            return
        listener.read_time = read_time
        if not listener.current.is_set():
            listener.current.set()
            if not listener.replay:
                return  # what matched when the feed began was written before it
        if size > WINDOW_DOCUMENTS:
            self._rotate_soon.set()
        deadline = self._loop.time() + GRACE
        self._held += [(deadline, event) for event in events]
        self._release()
        if self._held:
            self._loop.call_later(GRACE, self._release)

    def _release(self) -> None:
        """Report, in commit order, the changes every posts listener has passed (none has
        an older write of that post still to show: a delete, or a new window's first
        snapshot, may come before the old window's latest changes), or held for ``GRACE``."""
        if self._lost is not None or self._closed:
            return
        posts = [
            listener.read_time
            for window in self.windows
            for listener in window
            if not listener.deletions and listener.current.is_set() and not listener.stopped
        ]
        passed, now = min(posts, default=0), self._loop.time()
        due = [e for t, e in self._held if t <= now or e[0] <= passed]
        self._held = [(t, e) for t, e in self._held if not (t <= now or e[0] <= passed)]
        for event in sorted(due, key=lambda e: e[0]):
            self._report(event)

    def _report(self, event: _Event) -> None:
        commit, change = event
        post_id = change.post.id
        if commit <= max(self._floor, self._last.get(post_id, 0)):
            return  # reported already (windows overlap), or older than what was reported
        self._last[post_id] = commit
        if self._queue.full():
            self.lose("the change feed fell behind the writes")
        else:
            self._queue.put_nowait(change)

    def _wake(self) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    # --- windows ---------------------------------------------------------------------------

    async def _rotate_forever(self) -> None:
        try:
            with translated(self._listening.outage):
                while True:
                    await self._until_rotation()
                    start = await self._server_time() - MARGIN
                    await self._open_window(start, replay=True)
                    await self._retire()
                    self._release()  # what waited for the old window
                    # Nothing committed before ``start`` can come again: forget it.
                    self._last = {p: t for p, t in self._last.items() if t >= start}
        except DatabaseUnavailable as error:
            self.lose(str(error))
        except Exception as error:  # noqa: BLE001 - a bug: the follower is told, not left waiting
            self.lose(f"the change feed failed: {error!r}")

    async def _until_rotation(self) -> None:
        deadline = self._loop.time() + self._window
        while not self._rotate_soon.is_set() and self._loop.time() < deadline:
            wait = min(HEALTH_CHECK, max(0.0, deadline - self._loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._rotate_soon.wait()
            self._check_running()
        self._rotate_soon.clear()

    def _check_running(self) -> None:
        """A listener down twice in a row (once may be the SDK restarting it) lost its stream
        to an error the SDK does not retry."""
        for listener in (listener for window in self.windows for listener in window):
            down = not (listener.stopped or listener.watch is None or listener.watch.is_active)
            listener.idle_checks = listener.idle_checks + 1 if down else 0
            if listener.idle_checks >= 2:
                raise DatabaseUnavailable(f"Firestore: the listener on {listener.collection} ended")

    async def _server_time(self) -> int:
        """The server's time, from a read of a document (charged one read)."""
        probe = self._client.collection(self._posts).document("healthz-probe")
        snapshot = await asyncio.to_thread(probe.get, timeout=self._timeout)
        return _nanos(snapshot.read_time)

    async def _retire(self) -> None:
        """Stop each listener of the old windows once it has passed the new window's first
        snapshot (it has shown all that the new one does not), or after ``OVERLAP``."""
        old = [listener for window in self.windows[:-1] for listener in window]
        since = max(listener.read_time for listener in self.windows[-1])
        deadline = self._loop.time() + OVERLAP
        while old:
            done = [x for x in old if x.read_time >= since or self._loop.time() >= deadline]
            old = [x for x in old if x not in done]
            await self._stop(done)
            await asyncio.sleep(0.05)
        self.windows = self.windows[-1:]

    def _take_windows(self) -> list[_Listener]:
        taken, self.windows = self.windows, []
        return [listener for window in taken for listener in window]

    async def _stop(self, listeners: list[_Listener]) -> None:
        for listener in listeners:
            listener.stopped = True
        watches = [listener.watch for listener in listeners if listener.watch is not None]
        if watches:  # in a thread: each stop joins its listener's thread, for up to a second
            await asyncio.to_thread(lambda: [watch.unsubscribe() for watch in watches])


def _close(client: Client) -> None:
    client.close()  # type: ignore[no-untyped-call]  # its HTTP session, not the channel
    api = client._firestore_api_internal
    if api is not None:
        api.transport.close()


def _nanos(moment: Any) -> int:
    """A Firestore timestamp (a nanosecond datetime) in ns since the epoch."""
    stamp = moment.timestamp_pb()
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def _moment(nanos: int) -> datetime:
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


async def provision_ttl(admin: Any, database: str, prefix: str) -> str:
    """Make ``expireAt`` the tombstones' TTL field (built in the background), if it is not."""
    from google.cloud.firestore_admin_v1.types import Field

    if not (await inspect_ttl(admin, database, prefix))[0]:
        field = Field(name=_ttl_field(database, prefix), ttl_config=Field.TtlConfig())
        await admin.update_field(request={"field": field, "update_mask": {"paths": ["ttl_config"]}})
    return f"TTL policy on {prefix}{DELETIONS}.{EXPIRE}: there or building"


async def inspect_ttl(admin: Any, database: str, prefix: str) -> tuple[bool, str]:
    from google.api_core import exceptions
    from google.cloud.firestore_admin_v1.types import Field

    what, states = f"TTL policy on {prefix}{DELETIONS}.{EXPIRE}", Field.TtlConfig.State
    try:
        field = await admin.get_field(name=_ttl_field(database, prefix))
        state = states(field.ttl_config.state) if "ttl_config" in field else None
    except exceptions.NotFound:
        state = None
    if state in (states.ACTIVE, states.CREATING):
        return True, f"{what}: {state.name.lower()}"
    fix = "run `gql-api provision` or `gcloud firestore fields ttls update`"
    return False, f"{what}: missing (tombstones pile up); fix: {fix}"


def _ttl_field(database: str, prefix: str) -> str:
    return f"{database}/collectionGroups/{prefix}{DELETIONS}/fields/{EXPIRE}"
