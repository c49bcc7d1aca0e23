"""How an import tells its caller where it is (the CLI draws a progress bar from it)."""

from __future__ import annotations

from typing import Protocol


class ImportProgress(Protocol):
    """Receives the stages of an import and the rows done within the current one."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A new stage begins (``total`` rows, or None when unknown)."""

    def advance(self, rows: int) -> None:
        """``rows`` more rows of the current stage are done."""


class NoProgress:
    """Progress that goes nowhere (the API, tests)."""

    def stage(self, name: str, total: int | None = None) -> None:
        """Ignore the stage."""

    def advance(self, rows: int) -> None:
        """Ignore the rows."""
