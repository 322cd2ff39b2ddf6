"""Errors a client may see, each with the ``extensions.code`` of the public contract."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error whose message is meant for the client."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        if field is None:
            super().__init__(message)
        else:
            super().__init__(message, field=field)


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class PostNotFound(ApiError):
    code = "NOT_FOUND"


class Conflict(ApiError):
    code = "CONFLICT"

    def __init__(self, message: str, *, current_version: int | None) -> None:
        super().__init__(message, currentVersion=current_version)


class StoreUnavailableError(ApiError):
    code = "STORE_UNAVAILABLE"


class SubscriptionsUnavailable(ApiError):
    """This deployment serves no live updates (its store has no change feed)."""

    code = "SUBSCRIPTIONS_UNAVAILABLE"


class ImageStorageUnavailableError(ApiError):
    """The image storage failed or did not answer in time (the SDK's words stay in the log)."""

    code = "IMAGE_STORAGE_UNAVAILABLE"
