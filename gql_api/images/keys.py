"""Image object keys: ``{userId}/{random}.{ext}``, made here and only here.

The random part is 22 url-safe characters from ``secrets`` (128 bits), so keys never
collide and cannot be guessed; the extension follows from the content type, from a
short allow-list. ``is_valid_image_key`` accepts exactly the keys ``new_image_key``
makes for that user, which is what lets a post refer only to its author's uploads.
"""

from __future__ import annotations

import re
import secrets

# The content types a client may upload, and the extension each key gets.
CONTENT_TYPES: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
}
EXTENSION_TYPES: dict[str, str] = {ext: ctype for ctype, ext in CONTENT_TYPES.items()}

RANDOM_BYTES = 16  # token_urlsafe(16) is 22 characters
MAX_USER_ID_LENGTH = 256  # object names are at most 1,024 bytes on every cloud

_NAME = re.compile(r"[A-Za-z0-9_-]{22}\.(?:" + "|".join(EXTENSION_TYPES) + r")")


class ImageInputError(ValueError):
    """A content type or user id that cannot make an upload key (a client's mistake)."""


def extension_for(content_type: str) -> str:
    """The key extension for an allowed content type; ``ImageInputError`` otherwise."""
    extension = CONTENT_TYPES.get(content_type.strip().lower())
    if extension is None:
        allowed = ", ".join(CONTENT_TYPES)
        raise ImageInputError(f"content type {content_type!r} is not allowed; allowed: {allowed}")
    return extension


def content_type_of(key: str) -> str | None:
    """The content type a key's extension stands for (None for a foreign key)."""
    _, dot, extension = key.rpartition(".")
    return EXTENSION_TYPES.get(extension) if dot else None


def check_user_id(user_id: str) -> None:
    """Refuse a user id that cannot be the first segment of an object name."""
    if not user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise ImageInputError(f"a user id must have 1 to {MAX_USER_ID_LENGTH} characters")
    if user_id in (".", "..") or any(c in "/\\" or not c.isprintable() for c in user_id):
        raise ImageInputError("a user id with '/', '\\' or control characters cannot own images")


def new_image_key(user_id: str, content_type: str) -> str:
    """A fresh key ``{user_id}/{22 random url-safe characters}.{ext}``."""
    check_user_id(user_id)
    extension = extension_for(content_type)
    return f"{user_id}/{secrets.token_urlsafe(RANDOM_BYTES)}.{extension}"


def is_issued_image_key(key: str) -> bool:
    """Whether ``key`` has the form ``new_image_key`` hands out, to whichever user: only
    such a key names an image no other post shows (a migrated post's legacy key may be
    shared by several of the earlier service's posts)."""
    user_id, slash, _ = key.partition("/")
    return bool(slash) and is_valid_image_key(key, user_id)


def is_valid_image_key(key: str, author_id: str) -> bool:
    """Whether ``key`` is of the form ``new_image_key`` hands out to ``author_id``."""
    try:
        check_user_id(author_id)
    except ImageInputError:
        return False
    prefix = f"{author_id}/"
    return key.startswith(prefix) and _NAME.fullmatch(key, len(prefix)) is not None
