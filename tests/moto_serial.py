"""moto's server answering one request at a time.

moto's DynamoDB backend takes no locks, so its default threaded server lets two
conditional writes on one item both pass their condition: a race real DynamoDB never
has. Served one request at a time, every write is atomic, as on AWS.

Usage: python tests/moto_serial.py HOST PORT
"""

from __future__ import annotations

import os
import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
