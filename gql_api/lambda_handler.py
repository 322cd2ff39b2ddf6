"""The AWS Lambda entry point: ``gql_api.lambda_handler.handler``.

The app is built when the execution environment starts (the init phase, which a
SnapStart snapshot captures): settings are read and checked then, so a bad setting
fails the deployment's first invocation loudly instead of answering 500s. The store
client is created by the first request, after any snapshot restore, and reused by every
later invocation of the environment. Mangum's lifespan is off: it would open and close
the store around every invocation.
"""

from __future__ import annotations

from mangum import Mangum

from gql_api.app import create_app
from gql_api.logs import configure_logging
from gql_api.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level)
app = create_app(settings)
handler = Mangum(app, lifespan="off")
