"""moto's server answering one request at a time.

moto's DynamoDB backend takes no locks, so its default threaded server lets two
conditional writes on one item both pass their condition: a race real DynamoDB never
has. Served one request at a time, every write is atomic, as on AWS.

moto rolls a transaction back by deep-copying its tables first, the stream's records
with them, so every TransactWriteItems cost grew with the table's whole write history
(0.9 s per transaction after a few thousand writes). A record never changes once
written: the copy shares them and copies only their list, which is all a rollback needs.

Usage: python tests/moto_serial.py HOST PORT
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

from moto.dynamodb.models.table import StreamShard
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def _copy_shard(shard: StreamShard, memo: dict[int, Any]) -> StreamShard:
    """The shard with its own list of the same (immutable) records."""
    copied = copy.copy(shard)
    copied.table = memo.get(id(shard.table), shard.table)  # the table copy being made
    copied.items = list(shard.items)
    return copied


def main() -> None:
    StreamShard.__deepcopy__ = _copy_shard  # type: ignore[attr-defined]
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
