"""Where a migration stands, kept on disk after every page: the phase, the source's
position, the counts so far, and how much of the findings report is theirs.

The file is replaced atomically (written beside, flushed, renamed), so a crash or
Ctrl-C leaves the last whole page's checkpoint, never half of one. The findings report
(JSON lines) is cut back on resume to the length the checkpoint knew, so the rows of a
page done again are not listed twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gql_api.ops.migration.legacy import Finding
from gql_api.ops.migration.sources import Kind

FORMAT = 1
PHASES = ("profiles", "posts", "done")  # in the order a migration goes through them


class CheckpointError(Exception):
    """A checkpoint file that is not one, or one of another migration."""


@dataclass(slots=True)
class Counts:
    read: int = 0  # rows read from the source
    written: int = 0  # records written to the target
    already: int = 0  # found in the target as they would be written: nothing to do
    left_behind: int = 0  # rows that break a rule, or a duplicate id
    repaired: int = 0  # written with a repair (counted in ``written`` too)

    def add(self, other: Counts) -> None:
        for name in ("read", "written", "already", "left_behind", "repaired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class Checkpoint:
    source: str
    target: str
    phase: str = PHASES[0]
    position: str | None = None  # the source's position within ``phase``
    report_bytes: int = 0  # the findings report's length at this checkpoint
    counts: dict[str, Counts] = field(
        default_factory=lambda: {kind.value: Counts() for kind in Kind}
    )

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def is_past(self, kind: Kind) -> bool:
        return PHASES.index(self.phase) > PHASES.index(kind.value)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        return data


def load(path: Path, source: str, target: str) -> Checkpoint:
    """The checkpoint at ``path`` for this source and target; a new one if none is there."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Checkpoint(source=source, target=target)
    except OSError as error:
        raise CheckpointError(f"cannot read the checkpoint {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT or data.get("phase") not in PHASES:
            raise ValueError("not a checkpoint of this version")
        checkpoint = Checkpoint(
            source=str(data["source"]),
            target=str(data["target"]),
            phase=data["phase"],
            position=data["position"],
            report_bytes=int(data["report_bytes"]),
            counts={kind.value: Counts(**data["counts"][kind.value]) for kind in Kind},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{path} is not a gql-api migrate checkpoint ({error}): move it away to start over"
        ) from None
    if (checkpoint.source, checkpoint.target) != (source, target):
        raise CheckpointError(
            f"{path} is the checkpoint of another migration (from {checkpoint.source} "
            f"to {checkpoint.target}): give this one its own --checkpoint file"
        )
    return checkpoint


def save(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(checkpoint.as_json(), file, indent=1)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class Report:
    """The findings, one JSON object a line, appended as pages are done."""

    def __init__(self, path: Path, keep_bytes: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Opened for appending once, at the checkpoint's length: a page done again
        # after a crash lists its rows anew, not twice.
        self._file = path.open("ab")
        self._file.truncate(min(keep_bytes, self._file.seek(0, os.SEEK_END)))
        self._file.seek(0, os.SEEK_END)  # where appending goes on, and what tell() says

    def write(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            line = json.dumps(finding.as_json(), ensure_ascii=False) + "\n"
            self._file.write(line.encode("utf-8", "backslashreplace"))

    def flush(self) -> int:
        """Flush to disk; the report's length, for the checkpoint."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
