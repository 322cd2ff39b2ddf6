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

from gql_api.app import create_function_app

app = create_function_app()
handler = Mangum(app, lifespan="off")
