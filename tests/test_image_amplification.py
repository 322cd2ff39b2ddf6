"""Signed read URLs cannot be multiplied by aliases: each key is signed once per request,
and imageUrls costs what it may sign, so a page of them cannot be repeated 30 times."""

from __future__ import annotations

import pytest

from tests import image_api
from tests.image_api import CREATE, Api
from tests.image_storages import (  # noqa: F401 - fixtures, for make_bucket/provider_settings
    azurite_url,
    gcs_key,
    gcs_key_file,
    gcs_url,
)

api = image_api.api  # the shared fixture, as this module's

PAGES = """
query Pages {
  a: posts(first: 10) { nodes { imageUrls } }
  b: posts(first: 10) { nodes { id imageUrls } }
  c: posts(first: 10, authorId: "alice") { nodes { imageUrls } }
  d: post(id: $id) { imageUrls }
}""".replace("query Pages", "query Pages($id: ID!)")


async def test_each_key_is_signed_once_whatever_the_aliases(api: Api) -> None:
    keys = []
    for _ in range(3):
        uploaded = await api.upload_keys(2)
        created = (await api.data(CREATE, {"keys": uploaded}))["createPost"]
        keys += uploaded
    assert isinstance(api.images, image_api.CountingStorage)
    api.images.read_calls.clear()
    answer = await api.data(PAGES, {"id": created["id"]}, user=None)
    signed = [key for call in api.images.read_calls for key in call]
    assert sorted(signed) == sorted(keys)  # six keys on three aliased pages: six signatures
    urls = {url for page in "abc" for node in answer[page]["nodes"] for url in node["imageUrls"]}
    assert len(urls) == len(keys) and set(answer["d"]["imageUrls"]) <= urls


@pytest.mark.parametrize("user", [None, "mallory"], ids=["anonymous", "signed in"])
async def test_thirty_aliased_pages_of_image_urls_are_refused_before_signing(
    api: Api, user: str | None
) -> None:
    fields = " ".join(f"a{n}: posts(first: 100) {{ nodes {{ imageUrls }} }}" for n in range(30))
    assert isinstance(api.images, image_api.CountingStorage)
    body = await api.gql(f"{{ {fields} }}", user=user)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_COMPLEX"]
    assert api.images.read_calls == []
    one_page = await api.gql("{ posts(first: 100) { nodes { imageUrls } } }", user=user)
    assert "errors" not in one_page  # a full page of images still costs less than the limit
