"""Independent checks of presigned URLs, for local servers that check none.

Both AWS SigV4 and Cloud Storage V4 sign a canonical request built from the URL and
the headers the client sends; these rebuild it from what a client really sends and
verify the signature, so a header the client changes (a content type) or another
object name fails as it would on the cloud.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey


def _canonical_request(
    method: str, url: str, sent: Mapping[str, str], prefix: str
) -> tuple[str, dict[str, str]]:
    """The canonical request of a query-signed URL, and its query parameters."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signed_names = query[f"X-{prefix}-SignedHeaders"].split(";")
    headers = {name.lower(): value.strip() for name, value in sent.items()}
    headers.setdefault("host", parts.netloc)
    canonical_headers = "".join(f"{name}:{headers.get(name, '')}\n" for name in signed_names)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
        if k != f"X-{prefix}-Signature"
    )
    request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            canonical_headers,
            ";".join(signed_names),
            "UNSIGNED-PAYLOAD",
        ]
    )
    return request, query


def _string_to_sign(algorithm: str, timestamp: str, scope: str, request: str) -> bytes:
    digest = hashlib.sha256(request.encode()).hexdigest()
    return "\n".join([algorithm, timestamp, scope, digest]).encode()


def gcs_v4_signature_valid(
    method: str, url: str, sent: Mapping[str, str], public_key: RSAPublicKey
) -> bool:
    """A Cloud Storage V4 signed URL: RSA PKCS#1 v1.5 over SHA-256 of the string-to-sign."""
    request, query = _canonical_request(method, url, sent, "Goog")
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    message = _string_to_sign("GOOG4-RSA-SHA256", query["X-Goog-Date"], scope, request)
    try:
        public_key.verify(
            bytes.fromhex(query["X-Goog-Signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def s3_sigv4_signature_valid(method: str, url: str, sent: Mapping[str, str], secret: str) -> bool:
    """An S3 presigned URL: HMAC-SHA256 with the key derived from the secret and scope."""
    request, query = _canonical_request(method, url, sent, "Amz")
    scope = query["X-Amz-Credential"].split("/", 1)[1]
    message = _string_to_sign("AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, request)
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, query["X-Amz-Signature"])
