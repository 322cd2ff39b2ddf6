"""The AWS Lambda entry point: ``gql_api.lambda_handler.handler``.

The app is built when the execution environment starts (the init phase, which a
SnapStart snapshot captures): settings are read and checked then, so a bad setting
fails the deployment's first invocation loudly instead of answering 500s. The init
phase also imports the store's SDK and loads its service model (``prepare``): Lambda
runs init at full CPU, and with SnapStart it is paid once per published version. The
store client, its credentials and its connections come with the first request, after
any snapshot restore, and every later invocation of the environment reuses them.
Mangum's lifespan is off: it would open and close the store around every invocation.
"""

from __future__ import annotations

from mangum import Mangum

from gql_api.app import create_app
from gql_api.logs import configure_logging
from gql_api.settings import load_settings
from gql_api.stores import Preparable, create_store

settings = load_settings()
configure_logging(settings.log_level)
store = create_store(settings)
if isinstance(store, Preparable):
    store.prepare()
app = create_app(settings, store=store, freeze_heap=True)
handler = Mangum(app, lifespan="off")
