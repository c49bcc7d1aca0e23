"""What an import did: rows read, written, repaired and rejected (each with its reason)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gis.errors import Unprocessable

# how many problems an error message lists before it says "and N more"
LISTED_PROBLEMS = 20
# how many problems an error or a report carries in its details at most
KEPT_PROBLEMS = 1000


@dataclass(frozen=True)
class Problem:
    """One source row that needed attention, named as a person finds it in the file."""

    row: str
    reason: str

    def __str__(self) -> str:
        return f"{self.row}: {self.reason}"


@dataclass
class ImportReport:
    """The final account of one import."""

    layer: str
    source: str
    crs: str = ""
    mode: str = "append"
    dry_run: bool = False
    created: bool = False
    read: int = 0
    written: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    repaired: list[Problem] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (problem lists capped at KEPT_PROBLEMS)."""
        data = asdict(self)
        data["repaired"] = [asdict(p) for p in self.repaired[:KEPT_PROBLEMS]]
        data["rejected"] = [asdict(p) for p in self.rejected[:KEPT_PROBLEMS]]
        data["repaired_count"] = len(self.repaired)
        data["rejected_count"] = len(self.rejected)
        data["seconds"] = round(self.seconds, 3)
        return data


def problem_list(problems: list[Problem]) -> str:
    """The first LISTED_PROBLEMS problems, one per line, and how many more there are."""
    lines = [f"  {p}" for p in problems[:LISTED_PROBLEMS]]
    if len(problems) > LISTED_PROBLEMS:
        lines.append(f"  … and {len(problems) - LISTED_PROBLEMS} more")
    return "\n".join(lines)


def refuse(summary: str, problems: list[Problem], code: str) -> Unprocessable:
    """An Unprocessable error that states ``summary`` and lists the problems behind it."""
    message = f"{summary}; nothing was written:\n{problem_list(problems)}"
    details = [asdict(p) for p in problems[:KEPT_PROBLEMS]]
    return Unprocessable(message, code=code, details=details)


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in file order ("feature 2" before "feature 10")."""

    def place(problem: Problem) -> tuple[str, int]:
        kind, _, number = problem.row.rpartition(" ")
        return kind, int(number) if number.isdigit() else 0

    return sorted(problems, key=place)
