"""Independent checks of presigned URLs and POST policies, for local servers that check none.

Both AWS SigV4 and Cloud Storage V4 sign a canonical request built from the URL and
the headers the client sends; these rebuild it from what a client really sends and
verify the signature, so a header the client changes (a content type) or another
object name fails as it would on the cloud.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
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


def s3_post_policy_signature_valid(fields: Mapping[str, str], secret: str) -> bool:
    """An S3 presigned POST: HMAC-SHA256 of the base64 policy, with the SigV4 key."""
    scope = fields["x-amz-credential"].split("/", 1)[1]
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, fields["policy"].encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["x-amz-signature"])


def s3_post_policy_refusal(
    fields: Mapping[str, str], bucket: str, size: int, now: datetime
) -> str | None:
    """What S3 would refuse about a POST of these form fields and a file of ``size``
    bytes under the policy the fields carry (None: it would accept it). As S3 does:
    every condition must hold, and every field sent must be named by a condition, but
    ``x-ignore-*`` fields (which S3 ignores altogether)."""
    policy = json.loads(base64.b64decode(fields["policy"]))
    if datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")) <= now:
        return "the policy has expired"
    sent = {name.lower(): value for name, value in fields.items()} | {"bucket": bucket}
    covered = {"policy", "x-amz-signature", "file"}
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            ((name, value),) = condition.items()
            operator, field = "eq", name.lower()
        elif condition[0] == "content-length-range":
            if not condition[1] <= size <= condition[2]:
                return f"the file's {size} bytes are outside {condition[1]}..{condition[2]}"
            continue
        else:
            operator, field, value = condition[0], condition[1].lstrip("$").lower(), condition[2]
        covered.add(field)
        got = sent.get(field, "")
        matches = got == value if operator == "eq" else got.startswith(value)
        if not matches:
            return f"{field}={got!r} does not match the policy's {value!r}"
    extra = sorted(name for name in set(sent) - covered if not name.startswith("x-ignore-"))
    return f"fields not in the policy: {extra}" if extra else None
