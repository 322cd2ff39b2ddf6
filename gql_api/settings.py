"""Typed settings, read once from the environment and validated at start-up.

Every variable is listed in the README; a bad value stops the process with
exit status 2 and a message naming the variable and what it accepts.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

StoreName = Literal["sqlite", "memory", "dynamodb", "firestore", "cosmos"]
AuthMode = Literal["dev", "jwt", "cognito", "firebase", "entra"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ImagesProvider = Literal["s3", "gcs", "azure"]

# Where images go when GQL_API_IMAGES_PROVIDER is unset: the store's own cloud.
_STORE_IMAGES_PROVIDERS: dict[str, ImagesProvider] = {
    "dynamodb": "s3",
    "firestore": "gcs",
    "cosmos": "azure",
}

# The earlier service chose its backend with CLOUD_PROVIDER; "local" maps to ours.
_CLOUD_PROVIDER_STORES = {
    "local": "sqlite",
    "aws": "dynamodb",
    "gcp": "firestore",
    "azure": "cosmos",
}


# Variables each hosting platform sets in every instance: where one is set, this process
# serves other people, so dev tokens are refused and introspection is off by default.
_PLATFORM_SIGNALS = {
    "lambda_function_name": ("AWS Lambda", "AWS_LAMBDA_FUNCTION_NAME"),
    "k_service": ("Google Cloud Run", "K_SERVICE"),
    "functions_worker_runtime": ("Azure Functions", "FUNCTIONS_WORKER_RUNTIME"),
    "container_app_name": ("Azure Container Apps", "CONTAINER_APP_NAME"),
}

# Variables of the earlier service, read when ours are unset.
_FALLBACKS = {
    "GQL_API_DYNAMODB_TABLE": "POSTS_TABLE_NAME",
    "GQL_API_IMAGES_BUCKET": "IMAGES_BUCKET_NAME",
}


class SettingsError(Exception):
    """A setting has a value the service cannot run with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GQL_API_",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        env_ignore_empty=True,  # an empty variable (as deploy templates set) means unset
    )

    store: StoreName = "sqlite"
    sqlite_path: Path = Path(".gql-api/gql-api.db")
    sqlite_synchronous: Literal["full", "normal"] = "full"
    store_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0

    dynamodb_table: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")] = Field(
        default="gql-api",
        validation_alias=AliasChoices("GQL_API_DYNAMODB_TABLE", "POSTS_TABLE_NAME"),
    )
    dynamodb_endpoint: Annotated[str | None, Field(pattern=r"^https?://")] = None
    dynamodb_feed_shards: Annotated[int, Field(ge=1, le=64)] = 1

    firestore_project: str | None = None
    firestore_database: str | None = None
    firestore_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{0,64}$")] = ""

    cosmos_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    cosmos_key: SecretStr | None = None
    cosmos_database: Annotated[str, Field(pattern=r"^[^/\\?#]{1,255}$")] = "gql-api"
    cosmos_verify_tls: bool = True

    auth: AuthMode = "dev"
    dev_secret: SecretStr | None = None
    groups_claim: Annotated[str, Field(min_length=1)] = "groups"
    admin_group: Annotated[str, Field(min_length=1)] = "Admins"
    admin_claim: str | None = None
    jwks_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    oidc_discovery_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    cognito_region: Annotated[str | None, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = None
    cognito_user_pool_id: Annotated[str | None, Field(pattern=r"^[\w-]+_[0-9A-Za-z]+$")] = None
    cognito_client_id: str | None = None
    firebase_project_id: Annotated[str | None, Field(pattern=r"^[a-z][a-z0-9-]{4,29}$")] = None
    entra_tenant_id: str | None = None  # a GUID (see _tenant_guid)
    entra_client_id: str | None = None
    entra_token_version: Literal["2", "1", "any"] = "2"  # noqa: S105 - a format, no secret
    entra_allow_app_tokens: bool = False

    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    graphiql: bool | None = None  # None: on, except on AWS Lambda (see graphiql_enabled)
    introspection: bool | None = None  # None: on, except where deployed (see deployed_on)
    shared_dev_server: bool = False
    # Off: every operation runs on graphql-core's executor (the same answers, slower).
    compiled_operations: bool = True
    max_depth: Annotated[int, Field(ge=2, le=100)] = 12
    max_aliases: Annotated[int, Field(ge=0, le=10_000)] = 30
    max_tokens: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    max_directives: Annotated[int, Field(ge=0, le=10_000)] = 20
    max_cost: Annotated[int, Field(ge=100, le=10_000_000)] = 20_000
    max_validation_work: Annotated[int, Field(ge=100, le=10_000_000)] = 10_000
    # Under Lambda's 6 MB for a synchronous answer, with room for its encoding.
    max_response_bytes: Annotated[int, Field(ge=64 * 1024, le=1024**3)] = 4 * 1024 * 1024
    writes_per_minute: Annotated[int, Field(ge=0, le=1_000_000)] = 60
    cost_per_minute: Annotated[int, Field(ge=0, le=1_000_000_000)] = 1_000_000
    trusted_proxies: Annotated[int, Field(ge=0, le=10)] = 0
    head_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    body_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    keepalive_timeout: Annotated[int, Field(ge=1, le=300)] = 5
    keepalive_max_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    # Anonymous GETs of queries: seconds browsers (max-age) and CDNs (s-maxage) may keep.
    cache_max_age: Annotated[int, Field(ge=0, le=86_400)] = 5
    cache_s_maxage: Annotated[int, Field(ge=0, le=86_400)] = 30
    trusted_documents: Path | None = None  # a manifest: only its operations run
    # Subscriptions (the live feed): WebSocket and SSE connections, and their bounds.
    subscriptions: bool = True
    max_subscription_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    max_subscriptions_per_connection: Annotated[int, Field(ge=1, le=1000)] = 20
    subscription_queue: Annotated[int, Field(ge=1, le=100_000)] = 100
    subscription_keepalive: Annotated[float, Field(ge=1, le=600)] = 15.0
    subscription_idle_timeout: Annotated[float, Field(ge=1, le=86_400)] = 300.0
    subscription_init_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    subscription_max_unread_bytes: Annotated[int, Field(ge=65_536, le=1 << 30)] = 4 << 20
    # Subscriptions on AWS Lambda (an API Gateway WebSocket API: gql_api/lambda_websocket.py):
    # the connections table, and the API's Management API (https://<api>.execute-api.
    # <region>.amazonaws.com/<stage>; the route handlers fall back on the event's own).
    websocket_table: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")] = None
    websocket_endpoint: Annotated[str | None, Field(pattern=r"^https?://")] = None
    log_level: LogLevel = "INFO"

    images_bucket: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GQL_API_IMAGES_BUCKET", "IMAGES_BUCKET_NAME"),
    )
    images_provider: ImagesProvider | None = None  # None: the store's cloud
    images_public_base_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    upload_url_ttl: Annotated[int, Field(ge=60, le=86_400)] = 900
    max_image_bytes: Annotated[int, Field(ge=1024, le=5 * 1024**3)] = 10 * 1024 * 1024
    images_read_url_ttl: Annotated[int, Field(ge=60, le=604_800)] = 3600
    azure_storage_account_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    azure_storage_connection_string: SecretStr | None = Field(
        default=None, validation_alias="AZURE_STORAGE_CONNECTION_STRING"
    )

    cloud_provider: str | None = Field(default=None, validation_alias="CLOUD_PROVIDER")
    lambda_function_name: str | None = Field(
        default=None, validation_alias="AWS_LAMBDA_FUNCTION_NAME"
    )
    k_service: str | None = Field(default=None, validation_alias="K_SERVICE")
    functions_worker_runtime: str | None = Field(
        default=None, validation_alias="FUNCTIONS_WORKER_RUNTIME"
    )
    container_app_name: str | None = Field(default=None, validation_alias="CONTAINER_APP_NAME")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(
                    f"each origin must be '*' or start with http:// or https://: {origin!r}"
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _lower_synchronous(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("dev_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters long (HS256 wants 256 bits)")
        return value

    @field_validator("entra_tenant_id")
    @classmethod
    def _tenant_guid(cls, value: str | None) -> str | None:
        # Tokens name the tenant by its GUID in "iss": with a domain name, none would match.
        if value is None:
            return None
        groups = value.split("-")
        if [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(
            c in "0123456789abcdefABCDEF" for c in "".join(groups)
        ):
            return value.lower()
        raise ValueError(
            "must be the directory (tenant) ID, a GUID such as "
            "00001111-aaaa-2222-bbbb-3333cccc4444, not a domain name or common, organizations "
            "or consumers: Entra ID names the tenant by GUID in every token's issuer. Find it "
            "in the Azure portal (Microsoft Entra ID > Overview > Tenant ID), with "
            "`az account show --query tenantId -o tsv`, or as the GUID in the issuer of "
            "https://login.microsoftonline.com/<domain>/v2.0/.well-known/openid-configuration"
        )

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.cloud_provider is not None and "store" not in self.model_fields_set:
            store = _CLOUD_PROVIDER_STORES.get(self.cloud_provider.lower())
            if store is None:
                raise ValueError(
                    f"CLOUD_PROVIDER={self.cloud_provider!r} is not supported; allowed: "
                    f"{', '.join(sorted(_CLOUD_PROVIDER_STORES))} (or set GQL_API_STORE)"
                )
            object.__setattr__(self, "store", store)
        if self.store == "cosmos" and self.cosmos_url is None:
            raise ValueError(
                "GQL_API_COSMOS_URL is required with the cosmos store "
                "(the account endpoint, https://<account>.documents.azure.com:443/)"
            )
        self._check_auth()
        self._check_images()
        self._check_deployment(self.deployed_on)
        return self

    def _check_deployment(self, where: str | None) -> None:
        """Dev tokens (signed by a secret made on the instance) only on a developer's machine,
        unless a shared development server says so, loudly."""
        if where is None or self.auth != "dev":
            return
        if not self.shared_dev_server:
            raise ValueError(
                f"GQL_API_AUTH=dev is refused on {where}: dev tokens are for a developer's "
                "machine only (GQL_API_AUTH is dev when unset). Set GQL_API_AUTH to jwt, "
                "cognito, firebase or entra, or GQL_API_SHARED_DEV_SERVER=true for a shared "
                "development server where anyone holding the dev secret is anyone"
            )
        if self.dev_secret is None:
            raise ValueError(
                f"GQL_API_SHARED_DEV_SERVER=true on {where} needs GQL_API_DEV_SECRET: a "
                "secret file made on each instance would make tokens that other instances "
                "refuse"
            )

    def served_on(self, host: str) -> Settings:
        """These settings for a server bound to ``host``: an address other than loopback
        serves other machines, so it is held to the rules of a deployment."""
        if _is_loopback(host) or self.deployed_on is not None:
            return self
        where = f"a server bound to {host} (not loopback)"
        try:
            self._check_deployment(where)
        except ValueError as error:
            raise SettingsError(f"invalid settings: {error}") from None
        if self.introspection is None and not self.shared_dev_server:
            return self.model_copy(update={"introspection": False})
        return self

    def _check_auth(self) -> None:
        needed = {
            "jwt": ["jwks_url", "jwt_issuer", "jwt_audience"],
            "cognito": ["cognito_region", "cognito_user_pool_id"],
            "firebase": ["firebase_project_id"],
            "entra": ["entra_tenant_id", "entra_client_id"],
        }.get(self.auth, [])
        if self.auth == "cognito" and self.jwt_audience is None:
            needed.append("cognito_client_id")
        missing = [f"GQL_API_{name.upper()}" for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"GQL_API_AUTH={self.auth} needs {', '.join(missing)}")
        for name in ("jwks_url", "oidc_discovery_url"):
            url = getattr(self, name) or ""
            try:
                host = urlsplit(url).hostname or ""
            except ValueError as error:  # "http://[" passes the pattern but is no address
                raise ValueError(f"GQL_API_{name.upper()} is not a URL: {error}") from None
            if url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(
                    f"GQL_API_{name.upper()} must use https (plain http only for a local test "
                    "server)"
                )

    def _check_images(self) -> None:
        if self.images_bucket is None:
            return
        if self.images_cloud is None:
            raise ValueError(
                f"GQL_API_IMAGES_BUCKET is set but the {self.store} store has no cloud of its "
                "own: set GQL_API_IMAGES_PROVIDER to s3, gcs or azure"
            )
        key, url = self.azure_storage_connection_string, self.azure_storage_account_url
        if self.images_cloud == "azure" and (key is None) == (url is None):
            raise ValueError(
                "Azure Blob images need exactly one of AZURE_STORAGE_CONNECTION_STRING "
                "(account key) or GQL_API_AZURE_STORAGE_ACCOUNT_URL (Entra ID identity)"
            )
        if self.images_cloud == "azure" and self.images_public_base_url is not None:
            why = (
                "GQL_API_IMAGES_PROVIDER=azure"
                if self.images_provider
                else f"GQL_API_STORE={self.store}, whose images go to Azure"
            )
            raise ValueError(
                f"GQL_API_IMAGES_PUBLIC_BASE_URL cannot be used with Azure Blob images ({why}): "
                "an upload SAS cannot bind the uploaded Content-Type, so an unsigned read "
                "would serve a blob uploaded as text/html as a web page; only a signed read "
                "URL fixes its image type. Unset GQL_API_IMAGES_PUBLIC_BASE_URL (reads are "
                "then signed)"
            )
        if self.images_cloud == "azure" and url is not None:
            self._check_delegated_ttls()

    def _check_delegated_ttls(self) -> None:
        """URLs signed with an Azure user-delegation key must end before it (7 days)."""
        from gql_api.images.azure_blob import MAX_DELEGATED_URL_TTL

        longest = int(MAX_DELEGATED_URL_TTL.total_seconds())
        for variable, ttl in (
            ("GQL_API_IMAGES_READ_URL_TTL", self.images_read_url_ttl),
            ("GQL_API_UPLOAD_URL_TTL", self.upload_url_ttl),
        ):
            if ttl > longest:
                raise ValueError(
                    f"{variable}={ttl} is too long for Azure Blob images signed with an "
                    f"Entra ID identity (GQL_API_AZURE_STORAGE_ACCOUNT_URL): at most "
                    f"{longest} seconds, since a user-delegation key lasts at most 7 days "
                    "and must outlive every URL it signs, with a margin"
                )

    @property
    def images_cloud(self) -> ImagesProvider | None:
        """The image storage's provider: the one set, else the store's cloud."""
        return self.images_provider or _STORE_IMAGES_PROVIDERS.get(self.store)

    @property
    def deployed_on(self) -> str | None:
        """The hosting platform whose variable is set ("Google Cloud Run (K_SERVICE is
        set)"), or None on a developer's machine."""
        for field, (platform, variable) in _PLATFORM_SIGNALS.items():
            if getattr(self, field):
                return f"{platform} ({variable} is set)"
        return None

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL for browsers: on, except on Lambda and Azure Functions, whose functions
        answer an API's clients (its assets would cost each cold start that serves one)."""
        if self.graphiql is not None:
            return self.graphiql
        return self.lambda_function_name is None and self.functions_worker_runtime is None

    @property
    def introspection_enabled(self) -> bool:
        """Introspection and "did you mean" suggestions: on for a developer (or a shared
        development server), off by default where deployed."""
        if self.introspection is not None:
            return self.introspection
        return self.deployed_on is None or self.shared_dev_server

    @property
    def data_dir(self) -> Path:
        """Where the embedded database and the dev secret live."""
        return self.sqlite_path.parent


def load_settings() -> Settings:
    """Read and validate settings; raise ``SettingsError`` naming the variable at fault."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule across several variables names them itself
            lines.append(message)
            continue
        name = str(error["loc"][0])  # a field, or the variable of an alias (upper case)
        variable = name if name.isupper() else f"GQL_API_{name.upper()}"
        fallback = _FALLBACKS.get(variable)
        if variable not in os.environ and fallback is not None and fallback in os.environ:
            variable = fallback
        # Read as pydantic reads it: the variable may be set in another case.
        given = next((v for k, v in os.environ.items() if k.upper() == variable), "")
        shown = "***" if "SECRET" in variable else given
        if len(shown) > 80:  # the variable and the rule are what helps, not a megabyte
            shown = shown[:77] + "..."
        lines.append(f"{variable}={shown!r}: {message}")
    return "invalid settings: " + "; ".join(lines)
