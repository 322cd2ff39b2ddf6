"""Input rules of the public contract: limits, normalization and the error for each case."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from gql_api.errors import BadUserInput
from gql_api.images.keys import CONTENT_TYPES, MAX_USER_ID_LENGTH, is_valid_image_key


@dataclass(frozen=True, slots=True)
class Limits:
    max_content_length: int = 10_000
    # Surrounding whitespace is stored as sent, but not without bound: no store should
    # hold (or a DynamoDB item overflow on) a megabyte of spaces around a short post.
    max_raw_content_length: int = 20_000
    max_tags: int = 10
    max_raw_tags: int = 1_000
    max_tag_length: int = 50
    max_images_per_post: int = 4
    max_page_size: int = 100
    default_page_size: int = 20
    max_user_id_length: int = MAX_USER_ID_LENGTH
    max_cursor_length: int = 1024
    max_nickname_length: int = 50


LIMITS = Limits()
# The most characters a tag may have before NFKC: four times what it may have after.
MAX_RAW_TAG_LENGTH = 4 * LIMITS.max_tag_length

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Lone surrogates come through JSON escapes but cannot be stored as UTF-8."""
    return _SURROGATE.search(text) is not None


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs")


def check_content(content: str, field: str) -> str:
    if len(content) > LIMITS.max_raw_content_length:
        raise BadUserInput(
            f"{field} is too long: at most {LIMITS.max_raw_content_length} characters "
            "including surrounding whitespace",
            field=field,
        )
    if has_surrogates(content):
        raise BadUserInput(f"{field} contains an invalid character (a lone surrogate)", field=field)
    length = len(content.strip())
    if length == 0:
        raise BadUserInput(f"{field} must not be empty or only whitespace", field=field)
    if length > LIMITS.max_content_length:
        raise BadUserInput(
            f"{field} is too long: {length} characters, at most {LIMITS.max_content_length}",
            field=field,
        )
    return content


def normalize_tag(raw: str, field: str) -> str:
    """NFKC, trimmed, lower-cased; 1-50 characters, no whitespace or control characters."""
    # NFKC may grow a text 18-fold: bound it before (a tag it shrinks 4-fold is absurd).
    if len(raw) > MAX_RAW_TAG_LENGTH and len(raw.strip()) > MAX_RAW_TAG_LENGTH:
        raise BadUserInput(
            f"{field} is too long: at most {LIMITS.max_tag_length} characters", field=field
        )
    if has_surrogates(raw):
        raise BadUserInput(f"{field} contains an invalid character (a lone surrogate)", field=field)
    tag = unicodedata.normalize("NFKC", raw).strip().lower()
    if not tag:
        raise BadUserInput(f"{field} must not be empty", field=field)
    if len(tag) > LIMITS.max_tag_length:
        raise BadUserInput(
            f"{field} is too long: {len(tag)} characters, at most {LIMITS.max_tag_length}",
            field=field,
        )
    if any(char.isspace() or _is_control(char) for char in tag):
        raise BadUserInput(
            f"{field} must not contain whitespace or control characters", field=field
        )
    return tag


def normalize_tags(raw: Sequence[str], field: str) -> tuple[str, ...]:
    if len(raw) > LIMITS.max_raw_tags:  # bounds the work before duplicates are dropped
        raise BadUserInput(
            f"{field}: {len(raw)} entries; send at most {LIMITS.max_raw_tags} "
            f"(at most {LIMITS.max_tags} distinct after normalization)",
            field=field,
        )
    tags: dict[str, None] = {}
    for index, item in enumerate(raw):
        tags.setdefault(normalize_tag(item, f"{field}[{index}]"), None)
    if len(tags) > LIMITS.max_tags:
        raise BadUserInput(
            f"{field}: {len(tags)} distinct tags, at most {LIMITS.max_tags}", field=field
        )
    return tuple(tags)


def check_image_key_count(keys: Sequence[str], field: str) -> None:
    if len(keys) > LIMITS.max_images_per_post:
        raise BadUserInput(
            f"{field}: {len(keys)} image keys, at most {LIMITS.max_images_per_post}", field=field
        )


def check_image_keys(
    keys: Sequence[str], author_id: str, field: str, kept: Sequence[str] = ()
) -> tuple[str, ...]:
    """Each key must be one ``createUploadUrls`` hands out to the post's author:
    ``{author_id}/{22 random characters}.{png|jpg|webp|gif}``, also when an admin edits.
    A key the post already shows (``kept``) needs only the author's prefix: a migrated
    post keeps the earlier service's keys of other forms (``gql-api migrate``)."""
    check_image_key_count(keys, field)
    prefix = f"{author_id}/"
    for index, key in enumerate(keys):
        where = f"{field}[{index}]"
        if not key.startswith(prefix):
            raise BadUserInput(
                f"{where} is not under the post author's prefix {prefix!r}: a post may only "
                "show its author's uploads",
                field=where,
            )
        if key not in kept and not is_valid_image_key(key, author_id):
            raise BadUserInput(
                f"{where} is not an image key createUploadUrls hands out: expected "
                f"{prefix}<22 random characters>.<png|jpg|webp|gif>",
                field=where,
            )
    if len(set(keys)) != len(keys):
        raise BadUserInput(f"{field} lists the same key twice", field=field)
    return tuple(keys)


def check_upload_arguments(
    count: int, content_types: Sequence[str] | None, sizes: Sequence[int] | None, max_bytes: int
) -> None:
    """createUploadUrls' arguments: 1 to maxImagesPerPost uploads; when given, one allowed
    content type and one size (1 to ``max_bytes``) per upload."""
    most = LIMITS.max_images_per_post
    if not 1 <= count <= most:
        raise BadUserInput(f"count must be from 1 to {most}, got {count}", field="count")
    if content_types is not None and len(content_types) != count:
        raise BadUserInput(
            f"contentTypes has {len(content_types)} entries; give one per upload ({count}) "
            "or leave it out for image/jpeg",
            field="contentTypes",
        )
    for index, content_type in enumerate(content_types or ()):
        if content_type.strip().lower() not in CONTENT_TYPES:
            allowed = ", ".join(CONTENT_TYPES)
            raise BadUserInput(
                f"contentTypes[{index}] {content_type!r} is not allowed; allowed: {allowed}",
                field=f"contentTypes[{index}]",
            )
    if sizes is not None and len(sizes) != count:
        raise BadUserInput(
            f"sizes has {len(sizes)} entries; give one per upload ({count}) or leave it out",
            field="sizes",
        )
    for index, size in enumerate(sizes or ()):
        if not 1 <= size <= max_bytes:
            raise BadUserInput(
                f"sizes[{index}] is {size} bytes; an image holds 1 to {max_bytes} bytes",
                field=f"sizes[{index}]",
            )


def check_page_size(first: int | None) -> int:
    if first is None:
        return LIMITS.default_page_size
    if not 1 <= first <= LIMITS.max_page_size:
        # str() of an int past 4,300 digits raises ValueError: such a value is not shown.
        shown = first if abs(first) < 10**100 else "a number of over 100 digits"
        raise BadUserInput(
            f"first must be between 1 and {LIMITS.max_page_size}, got {shown}", field="first"
        )
    return first


def check_user_id(user_id: str, field: str) -> str:
    if not user_id or len(user_id) > LIMITS.max_user_id_length or has_surrogates(user_id):
        raise BadUserInput(
            f"{field} must be 1 to {LIMITS.max_user_id_length} valid characters", field=field
        )
    return user_id


# A post id is a random UUID's 32 lowercase hex digits (``new_post_id``), or one derived
# from an idempotency key in the same form; a post migrated from the earlier service keeps
# its id, a UUID in its canonical hyphenated form.
_ISSUED_POST_ID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def new_post_id() -> str:
    return uuid.uuid4().hex


def is_issued_post_id(post_id: str) -> bool:
    """Ids this service could have issued or migrated; any other names no post, and no
    store is asked."""
    return _ISSUED_POST_ID.fullmatch(post_id) is not None


# Unicode's bidirectional controls: inside a nickname they would reorder the text shown
# around it (a post, a name beside it). Other format characters stay allowed: the zero
# width joiner builds emoji sequences, the non-joiner spells Persian, tag characters
# make subdivision flags.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Interlinear annotation anchor, separator and terminator: they hide the text between
# them in renderers that honour them.
_ANNOTATION_CHARACTERS = frozenset("\ufff9\ufffa\ufffb")
# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt; the standard
# library has no such property), shown as nothing: fillers such as U+3164 are letters
# for unicodedata, yet a name made of them looks empty. U+2800 (braille blank) is added:
# not ignorable, but blank.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


def _is_invisible(char: str) -> bool:
    """Whitespace, a format character (Cf), or a code point shown as nothing."""
    if char.isspace() or unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _breaks_or_hides_text(char: str) -> bool:
    """Control characters (Cc), line and paragraph separators (Zl, Zp), bidirectional
    controls and interlinear annotation characters."""
    return (
        unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")
        or char in _BIDI_CONTROLS
        or char in _ANNOTATION_CHARACTERS
    )


def check_nickname(raw: str, field: str) -> str:
    """Trimmed; 1-50 characters (code points), at least one of them visible (not
    whitespace, a format character or a default-ignorable or blank code point); no
    control characters (category Cc: newlines, tabs, escapes...), line or paragraph
    separators (Zl, Zp), bidirectional controls or interlinear annotation characters."""
    nickname = raw.strip()
    # The length first: the checks below look at each character in Python.
    if len(nickname) > LIMITS.max_nickname_length:
        raise BadUserInput(
            f"{field} is too long: {len(nickname)} characters after trimming, "
            f"at most {LIMITS.max_nickname_length}",
            field=field,
        )
    if has_surrogates(nickname):
        raise BadUserInput(f"{field} contains an invalid character (a lone surrogate)", field=field)
    if all(_is_invisible(char) for char in nickname):
        raise BadUserInput(f"{field} must not be empty, blank or invisible", field=field)
    if any(_breaks_or_hides_text(char) for char in nickname):
        raise BadUserInput(
            f"{field} must not contain control characters (newlines, line separators, tabs "
            "and the like), bidirectional text controls or interlinear annotation characters",
            field=field,
        )
    return nickname


def clean_nickname(raw: object) -> str | None:
    """A nickname claim from a token, kept only when it is a valid nickname."""
    if not isinstance(raw, str):
        return None
    try:
        return check_nickname(raw, "nickname")
    except BadUserInput:
        return None
