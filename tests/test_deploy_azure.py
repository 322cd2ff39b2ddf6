"""The Azure template (deploy/azure/azuredeploy.json): the Function App's settings are
ones the app accepts as deployed, its Cosmos DB containers are what `gql-api provision`
makes, and its one identity holds exactly the roles the store and the images need,
each on the narrowest scope."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from gql_api.settings import load_settings
from gql_api.stores.cosmos import INDEXING_POLICY, PARTITION_KEY, POSTS, PROFILES

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "azure"
TEMPLATE = json.loads((DEPLOY / "azuredeploy.json").read_text())
IDENTITY = (
    "resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('identityName'))"
)
PRINCIPAL = f"[reference({IDENTITY}, '2023-01-31').principalId]"
CLIENT_ID = f"[reference({IDENTITY}, '2023-01-31').clientId]"
# What a deployment gives each expression the settings hold: values of the right shape.
DEPLOYED_VALUES = {
    "GQL_API_COSMOS_URL": "https://gql-api-abc.documents.azure.com:443/",
    "GQL_API_AZURE_STORAGE_ACCOUNT_URL": "https://gqliabc.blob.core.windows.net/",
    "GQL_API_ENTRA_TENANT_ID": "3f9a7c12-5b7e-4d0a-9c1e-2a4b6d8f0e13",
    "GQL_API_ENTRA_CLIENT_ID": "9d2f4e61-0c3b-4a7d-8e5f-1b2c3d4e5f60",
}


def resources(kind: str) -> list[dict[str, Any]]:
    return [r for r in TEMPLATE["resources"] if r["type"] == kind]


def resolved(value: Any) -> Any:
    """A template value with ``[variables('x')]`` and ``[parameters('x')]`` (defaults)
    replaced, as ARM does; other expressions stay as they are."""
    if isinstance(value, str):
        if match := re.fullmatch(r"\[variables\('(\w+)'\)\]", value):
            return resolved(TEMPLATE["variables"][match[1]])
        if match := re.fullmatch(r"\[parameters\('(\w+)'\)\]", value):
            return TEMPLATE["parameters"][match[1]].get("defaultValue", value)
        return value
    if isinstance(value, list):
        return [resolved(item) for item in value]
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    return value


def app_settings() -> dict[str, str]:
    (site,) = resources("Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}


@pytest.mark.parametrize("host_variable", [True, False], ids=["host's variable", "without it"])
def test_the_settings_are_ones_the_app_accepts_where_deployed(
    monkeypatch: pytest.MonkeyPatch, host_variable: bool
) -> None:
    """Production's defaults hold whether or not the worker sees FUNCTIONS_WORKER_RUNTIME
    (Flex Consumption sets the runtime in the app's config, not its settings)."""
    settings = app_settings()
    for name in [n for n in os.environ if n.startswith("GQL_API_")]:
        monkeypatch.delenv(name)
    if host_variable:
        monkeypatch.setenv("FUNCTIONS_WORKER_RUNTIME", "python")
    else:
        monkeypatch.delenv("FUNCTIONS_WORKER_RUNTIME", raising=False)
    for name, value in settings.items():
        if name.startswith("GQL_API_"):
            value = resolved(value)  # a literal, a variable or a parameter's default
            monkeypatch.setenv(name, DEPLOYED_VALUES[name] if value.startswith("[") else value)
    loaded = load_settings()
    assert (loaded.store, loaded.images_cloud, loaded.auth) == ("cosmos", "azure", "entra")
    assert loaded.cosmos_key is None  # the identity signs in: the account has no keys
    assert loaded.azure_storage_connection_string is None
    assert loaded.graphiql_enabled is False and loaded.trusted_proxies == 1
    assert loaded.introspection_enabled is False
    # The expressions point at the resources the names say.
    assert "documentEndpoint" in settings["GQL_API_COSMOS_URL"]
    assert "variables('cosmosAccountName')" in settings["GQL_API_COSMOS_URL"]
    assert "variables('imagesStorageName')" in settings["GQL_API_AZURE_STORAGE_ACCOUNT_URL"]
    assert settings["GQL_API_AZURE_STORAGE_ACCOUNT_URL"].endswith(".primaryEndpoints.blob]")
    # DefaultAzureCredential signs in as the app's one identity (a user-assigned one).
    assert settings["AZURE_CLIENT_ID"] == settings["AzureWebJobsStorage__clientId"] == CLIENT_ID
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_the_containers_are_what_provision_creates() -> None:
    made = {
        c["properties"]["resource"]["id"]: resolved(c["properties"]["resource"])
        for c in resources("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    }
    assert set(made) == {POSTS, PROFILES}
    for container in made.values():
        assert container["partitionKey"]["paths"] == [PARTITION_KEY]
    assert made[POSTS]["indexingPolicy"] == INDEXING_POLICY
    assert made[POSTS]["defaultTtl"] == -1  # on, so the live feed's delete tombstones expire
    assert "defaultTtl" not in made[PROFILES]
    assert "indexingPolicy" not in made[PROFILES]  # the default, as provision leaves it
    (account,) = resources("Microsoft.DocumentDB/databaseAccounts")
    assert account["properties"]["disableLocalAuth"] is True


def role_assignments() -> dict[str, dict[str, Any]]:
    """Each role the identity holds, by role name, with its scope."""
    roles = {guid: name for name, guid in TEMPLATE["variables"]["roles"].items()}
    held = {}
    for assignment in [
        *resources("Microsoft.Authorization/roleAssignments"),
        *resources("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"),
    ]:
        properties = assignment["properties"]
        assert properties["principalId"] == PRINCIPAL  # the app's identity, no other
        (name,) = re.findall(r"variables\('roles'\)\.(\w+)", properties["roleDefinitionId"])
        assert name in roles.values()
        held[name] = {"scope": assignment.get("scope") or properties.get("scope")}
    return held


def test_the_identity_holds_the_least_roles_on_the_narrowest_scopes() -> None:
    held = role_assignments()
    assert set(held) == {
        "cosmosDataContributor",  # reads and writes items (no keys, no control plane)
        "storageBlobDataContributor",  # uploads checked, moved, read and deleted
        "storageBlobDelegator",  # the user-delegation key that signs upload and read URLs
        "storageBlobDataOwner",  # the host's own storage (its keys and the package)
        "monitoringMetricsPublisher",  # Application Insights without its key
    }
    # The images: data on the one container, the delegation key on its account only.
    assert held["storageBlobDataContributor"]["scope"].endswith(
        "'/blobServices/default/containers/', variables('imagesContainer'))]"
    )
    assert "variables('imagesStorageName')" in held["storageBlobDataContributor"]["scope"]
    assert held["storageBlobDelegator"]["scope"] == (
        "[concat('Microsoft.Storage/storageAccounts/', variables('imagesStorageName'))]"
    )
    assert "hostStorageName" in held["storageBlobDataOwner"]["scope"]
    assert "imagesStorageName" not in held["storageBlobDataOwner"]["scope"]
    # Cosmos DB's data plane on the app's database, not the account.
    assert held["cosmosDataContributor"]["scope"].endswith("'/dbs/', parameters('databaseName'))]")
    assert TEMPLATE["variables"]["roles"]["cosmosDataContributor"] == (
        "00000000-0000-0000-0000-000000000002"  # Cosmos DB Built-in Data Contributor
    )


def test_the_app_runs_the_package_as_built_and_scales_within_bounds() -> None:
    (site,) = resources("Microsoft.Web/sites")
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.12"}  # package azure's
    assert list(site["identity"]["userAssignedIdentities"]) == [f"[{IDENTITY}]"]
    scale = resolved(config["scaleAndConcurrency"])
    assert scale["maximumInstanceCount"] == 40
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == 16
    deployment = config["deployment"]["storage"]
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    assert "variables('deploymentContainer')" in deployment["value"]
    (plan,) = resources("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    host = json.loads((DEPLOY / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""  # /graphql, not /api/graphql
    for account in resources("Microsoft.Storage/storageAccounts"):
        assert account["properties"]["allowBlobPublicAccess"] is False
        assert account["properties"]["allowSharedKeyAccess"] is False
