"""The rules above the stores: validation, ownership, versions, cursors, idempotency, images."""
