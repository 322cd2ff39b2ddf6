"""Image keys and image settings: what a post may refer to, and how the storage is chosen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gql_api.images import (
    CONTENT_TYPES,
    ImageInputError,
    content_type_of,
    is_issued_image_key,
    is_valid_image_key,
    new_image_key,
    open_image_storage,
    upload_url_ttl,
)
from gql_api.images.azure_blob import (
    CLOCK_SKEW,
    DELEGATION_KEY_MARGIN,
    MAX_DELEGATED_URL_TTL,
    AzureBlobImageStorage,
    delegation_key_expiring,
    delegation_key_lifetime,
)
from gql_api.images.base import ImageStorageError
from gql_api.settings import Settings, SettingsError, load_settings

RANDOM = "Abc-_0123456789xyzXYZ9"  # 22 url-safe characters, as handed out


@pytest.mark.parametrize("content_type", list(CONTENT_TYPES))
def test_new_keys_are_valid_for_their_user_only(content_type: str) -> None:
    key = new_image_key("alice", content_type)
    assert is_valid_image_key(key, "alice")
    assert not is_valid_image_key(key, "bob")
    assert not is_valid_image_key(key, "alic")
    assert not is_valid_image_key(key, "alice/")
    assert content_type_of(key) == content_type


def test_keys_keep_unusual_but_safe_user_ids() -> None:
    for user in ["auth0|5f7c8ec7", "4a1b2c3d-0000-4000-8000-000000000000", "ünï cödé"]:
        key = new_image_key(user, "image/png")
        assert key.startswith(f"{user}/")
        assert is_valid_image_key(key, user)


@pytest.mark.parametrize(
    "key",
    [
        f"bob/{RANDOM}.png",  # another user's
        f"alice/{RANDOM}.svg",  # not an allowed type
        f"alice/{RANDOM}.PNG",
        f"alice/{RANDOM}.jpeg",
        f"alice/{RANDOM}",
        f"alice/{RANDOM[:-1]}.png",  # too short
        f"alice/{RANDOM}A.png",  # too long
        f"alice/{RANDOM[:-1]}/.png",
        f"alice/{RANDOM[:-1]}..png",
        f"alice/x/{RANDOM}.png",  # a deeper path
        f"alice/../bob/{RANDOM}.png",
        f"alice//{RANDOM}.png",
        f"alice/{RANDOM}.png\n",
        f"alice/{RANDOM}.png?x=1",
        f"/alice/{RANDOM}.png",
        f"Alice/{RANDOM}.png",
        f"{RANDOM}.png",
        "",
    ],
)
def test_keys_not_handed_out_to_the_author_are_invalid(key: str) -> None:
    assert is_valid_image_key(f"alice/{RANDOM}.png", "alice")
    assert not is_valid_image_key(key, "alice")


@pytest.mark.parametrize("author", ["", ".", "..", "a/b", "a\\b", "a\x00b", "x" * 257])
def test_no_key_is_valid_for_an_author_that_cannot_own_keys(author: str) -> None:
    assert not is_valid_image_key(f"{author}/{RANDOM}.png", author)
    with pytest.raises(ImageInputError):
        new_image_key(author, "image/png")


def test_content_type_of_a_foreign_key_is_none() -> None:
    assert content_type_of("alice/photo.tiff") is None
    assert content_type_of("alice/photo") is None
    assert content_type_of("alice/photo.jpg") == "image/jpeg"


# Settings: the provider follows the store unless given; the earlier service's
# IMAGES_BUCKET_NAME still names the bucket.


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [
        "GQL_API_STORE",
        "GQL_API_IMAGES_BUCKET",
        "GQL_API_IMAGES_PROVIDER",
        "IMAGES_BUCKET_NAME",
        "CLOUD_PROVIDER",
        "AZURE_STORAGE_CONNECTION_STRING",
        "GQL_API_AZURE_STORAGE_ACCOUNT_URL",
        "GQL_API_UPLOAD_URL_TTL",
        "GQL_API_IMAGES_READ_URL_TTL",
        "GQL_API_IMAGES_PUBLIC_BASE_URL",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GQL_API_COSMOS_URL", "https://example.documents.azure.com:443/")
    return monkeypatch


@pytest.mark.parametrize(
    ("store", "provider"),
    [("dynamodb", "s3"), ("firestore", "gcs"), ("cosmos", "azure"), ("sqlite", None)],
)
def test_the_images_provider_defaults_to_the_stores_cloud(
    env: pytest.MonkeyPatch, store: str, provider: str | None
) -> None:
    env.setenv("GQL_API_STORE", store)
    assert load_settings().images_cloud == provider
    env.setenv("GQL_API_IMAGES_PROVIDER", "s3")
    assert load_settings().images_cloud == "s3"


def test_no_bucket_means_no_image_storage(env: pytest.MonkeyPatch) -> None:
    env.setenv("GQL_API_STORE", "dynamodb")
    assert open_image_storage(load_settings()) is None


def test_the_earlier_services_bucket_variable_is_read(env: pytest.MonkeyPatch) -> None:
    env.setenv("CLOUD_PROVIDER", "aws")
    env.setenv("IMAGES_BUCKET_NAME", "legacy-images")
    storage = open_image_storage(load_settings())
    assert storage is not None
    assert (storage.name, storage.bucket) == ("s3", "legacy-images")
    env.setenv("GQL_API_IMAGES_BUCKET", "new-images")
    storage = open_image_storage(load_settings())
    assert storage is not None and storage.bucket == "new-images"


def test_the_upload_url_lifetime_defaults_to_15_minutes(env: pytest.MonkeyPatch) -> None:
    assert upload_url_ttl(load_settings()).total_seconds() == 900
    env.setenv("GQL_API_UPLOAD_URL_TTL", "300")
    assert upload_url_ttl(load_settings()).total_seconds() == 300


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"GQL_API_UPLOAD_URL_TTL": "5"}, "GQL_API_UPLOAD_URL_TTL"),
        ({"GQL_API_UPLOAD_URL_TTL": "100000"}, "GQL_API_UPLOAD_URL_TTL"),
        ({"GQL_API_IMAGES_PROVIDER": "dropbox"}, "GQL_API_IMAGES_PROVIDER"),
        ({"GQL_API_IMAGES_PUBLIC_BASE_URL": "cdn.example.com"}, "GQL_API_IMAGES_PUBLIC_BASE_URL"),
        ({"GQL_API_IMAGES_BUCKET": "b"}, "GQL_API_IMAGES_PROVIDER"),  # sqlite has no cloud
        (
            {"GQL_API_IMAGES_BUCKET": "b", "GQL_API_STORE": "cosmos"},
            "AZURE_STORAGE_CONNECTION_STRING",
        ),
        (
            {
                "GQL_API_IMAGES_BUCKET": "b",
                "GQL_API_IMAGES_PROVIDER": "azure",
                "AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=a2V5",
                "GQL_API_AZURE_STORAGE_ACCOUNT_URL": "https://a.blob.core.windows.net",
            },
            "GQL_API_AZURE_STORAGE_ACCOUNT_URL",
        ),
    ],
)
def test_bad_image_settings_are_refused_naming_the_variable(
    env: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_azure_with_an_account_url_signs_with_an_identity(env: pytest.MonkeyPatch) -> None:
    settings = Settings(
        store="cosmos",
        cosmos_url="https://example.documents.azure.com:443/",
        images_bucket="images",
        azure_storage_account_url="https://example.blob.core.windows.net",
    )
    storage = open_image_storage(settings)
    assert storage is not None and storage.name == "azure"


# Azure Blob: a public base URL would serve blobs with the type they were uploaded with
# (an upload SAS cannot bind it), so only signed reads, which fix it, are allowed.

AZURE_KEY = {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=a2V5"}
AZURE_IDENTITY = {"GQL_API_AZURE_STORAGE_ACCOUNT_URL": "https://a.blob.core.windows.net"}


@pytest.mark.parametrize("signing", [AZURE_KEY, AZURE_IDENTITY])
@pytest.mark.parametrize(
    ("images", "why"),
    [
        ({"GQL_API_IMAGES_PROVIDER": "azure"}, "GQL_API_IMAGES_PROVIDER=azure"),
        ({"GQL_API_STORE": "cosmos"}, "GQL_API_STORE=cosmos"),
    ],
)
def test_azure_refuses_a_public_base_url(
    env: pytest.MonkeyPatch, signing: dict[str, str], images: dict[str, str], why: str
) -> None:
    for name, value in {**signing, **images, "GQL_API_IMAGES_BUCKET": "b"}.items():
        env.setenv(name, value)
    storage = open_image_storage(load_settings())
    assert storage is not None and storage.name == "azure"
    env.setenv("GQL_API_IMAGES_PUBLIC_BASE_URL", "https://cdn.example.com/images")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert "GQL_API_IMAGES_PUBLIC_BASE_URL" in message
    assert why in message
    assert "Content-Type" in message and "text/html" in message


@pytest.mark.parametrize("provider", ["s3", "gcs"])
def test_other_clouds_keep_a_public_base_url(env: pytest.MonkeyPatch, provider: str) -> None:
    env.setenv("GQL_API_IMAGES_BUCKET", "b")
    env.setenv("GQL_API_IMAGES_PROVIDER", provider)
    env.setenv("GQL_API_IMAGES_PUBLIC_BASE_URL", "https://cdn.example.com/images")
    assert load_settings().images_public_base_url == "https://cdn.example.com/images"


# Azure Blob with an Entra ID identity: URLs are signed with a user-delegation key, which
# lasts at most 7 days (by Azure's clock) and must outlive every URL it signs.

LONGEST_DELEGATED = int(MAX_DELEGATED_URL_TTL.total_seconds())


def test_azure_with_an_identity_refuses_url_lifetimes_no_delegation_key_covers(
    env: pytest.MonkeyPatch,
) -> None:
    variable = "GQL_API_IMAGES_READ_URL_TTL"
    for name, value in {**AZURE_IDENTITY, "GQL_API_IMAGES_BUCKET": "b"}.items():
        env.setenv(name, value)
    env.setenv("GQL_API_IMAGES_PROVIDER", "azure")
    env.setenv(variable, str(LONGEST_DELEGATED))
    settings = load_settings()
    assert open_image_storage(settings) is not None
    for too_long in (LONGEST_DELEGATED + 1, 604_800 - 1, 604_800):
        env.setenv(variable, str(too_long))
        with pytest.raises(SettingsError) as refused:
            load_settings()
        message = str(refused.value)
        assert variable in message and "GQL_API_AZURE_STORAGE_ACCOUNT_URL" in message
        assert f"at most {LONGEST_DELEGATED} seconds" in message
    # Upload URLs are signed with the same key; their own bound (a day) is lower today,
    # the rule holds whatever that bound becomes.
    longer_uploads = settings.model_copy(update={"upload_url_ttl": LONGEST_DELEGATED + 1})
    with pytest.raises(ValueError, match="GQL_API_UPLOAD_URL_TTL"):
        longer_uploads._check_delegated_ttls()


def test_azure_with_an_account_key_keeps_the_longest_read_url_lifetime(
    env: pytest.MonkeyPatch,
) -> None:
    for name, value in {**AZURE_KEY, "GQL_API_IMAGES_BUCKET": "b"}.items():
        env.setenv(name, value)
    env.setenv("GQL_API_IMAGES_PROVIDER", "azure")
    env.setenv("GQL_API_IMAGES_READ_URL_TTL", "604800")
    assert open_image_storage(load_settings()) is not None


def test_a_delegation_key_ends_within_azures_limit_and_outlives_its_urls() -> None:
    azure_limit = timedelta(days=7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    step = timedelta(minutes=7)
    for seconds in (60, 3600, 43_199, 43_200, 86_400, 3 * 86_400, 302_400, LONGEST_DELEGATED):
        longest = timedelta(seconds=seconds)
        lifetime = delegation_key_lifetime(longest)
        # Asked from a clock up to CLOCK_SKEW ahead of Azure's, it still ends in 7 days.
        assert lifetime + CLOCK_SKEW <= azure_limit, longest
        # A fresh key is not renewed at once: it serves hours of requests.
        assert not delegation_key_expiring(start + lifetime, start, longest)
        assert lifetime - longest - DELEGATION_KEY_MARGIN >= timedelta(hours=11), longest
        # Over two weeks of requests every URL ends a margin before the key that signs
        # it, and keys are renewed at most about once per 11 hours.
        now, expiry, renewals = start, None, 0
        while now < start + timedelta(days=14):
            if delegation_key_expiring(expiry, now, longest):
                expiry, renewals = now + delegation_key_lifetime(longest), renewals + 1
            assert expiry is not None
            assert now + longest + DELEGATION_KEY_MARGIN <= expiry
            now += step
        assert renewals <= 14 * 24 // 11 + 1, (longest, renewals)


def test_no_delegation_key_is_asked_for_urls_it_could_not_cover() -> None:
    with pytest.raises(ImageStorageError, match="at most"):
        delegation_key_lifetime(MAX_DELEGATED_URL_TTL + timedelta(seconds=1))
    with pytest.raises(ImageStorageError):
        AzureBlobImageStorage(
            "images",
            account_url="https://a.blob.core.windows.net",
            read_ttl=timedelta(days=7),
        )
    # With an account key there is no delegation key: any lifetime up to 7 days.
    AzureBlobImageStorage(
        "images", connection_string="AccountName=a;AccountKey=a2V5", read_ttl=timedelta(days=7)
    )


def test_an_issued_key_is_told_from_a_legacy_one_whoever_owns_it() -> None:
    assert is_issued_image_key(new_image_key("bob", "image/png"))
    for legacy in (
        "bob/photos/cat.jpg",
        "bob/cat.jpg",
        "bob",
        "/x.png",
        "a/b/" + "c" * 22 + ".png",
    ):
        assert not is_issued_image_key(legacy)
