"""What a run tells the user: each skipped row as it happens, and a summary at the end.

Skips go to a callback (the CLI writes them to stderr) and, with `--report FILE`, to a JSON
lines file, one object per skipped row, flushed as written so a killed run's report is whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from fashion_clip.errors import ConfigurationError


@dataclass(frozen=True)
class Skip:
    """One row left out: its row number, id (None when it had none), image and why."""

    row: int
    id: str | int | None
    reason: str
    image: str | None = None

    def message(self) -> str:
        who = f"row {self.row}" + (f" (id {self.id!r})" if self.id is not None else "")
        return f"{who}: skipped: {self.reason}"


@dataclass
class Summary:
    """Counts of one run. `indexed` counts points written (embedded or payload updated)."""

    indexed: int = 0
    unchanged: int = 0
    skipped: int = 0
    deleted: int = 0
    seconds: float = 0.0
    reused_vectors: int = 0  # of `indexed`: payload changed, image and caption did not
    prune_refused: str = ""  # why --prune deleted nothing, when it refused
    pictures_deleted: int = 0  # kept embedded pictures no point names any more (--prune)
    # Seconds the run spent waiting for images, in the model and waiting for the store.
    stages: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        rate = (self.indexed + self.unchanged) / self.seconds if self.seconds > 0 else 0.0
        pictures = (
            f" (and {self.pictures_deleted} unused pictures)" if self.pictures_deleted else ""
        )
        return (
            f"indexed {self.indexed}, unchanged {self.unchanged}, skipped {self.skipped}, "
            f"deleted {self.deleted}{pictures} in {self.seconds:.1f} s ({rate:.1f} rows/s)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts and seconds (rounded to the millisecond), stages as a nested dict."""
        figures = asdict(self)
        figures["seconds"] = round(self.seconds, 3)
        figures["stages"] = {name: round(s, 3) for name, s in self.stages.items()}
        return figures


class Reporter:
    """Collects skips: counts them, hands them to `on_skip` and appends them to `path`."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        on_skip: Callable[[Skip], None] | None = None,
    ) -> None:
        self.count = 0
        self._on_skip = on_skip
        self._file: IO[str] | None = None
        if path is not None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
            except OSError as exc:
                raise ConfigurationError(f"--report {path}: cannot write: {exc}") from exc

    def skip(self, skip: Skip) -> None:
        self.count += 1
        if self._on_skip is not None:
            self._on_skip(skip)
        if self._file is not None:
            self._file.write(json.dumps(asdict(skip), ensure_ascii=False, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
