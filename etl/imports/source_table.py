"""What every reader returns: geometries, attribute columns and the CRS of one source layer.

Points arrive as two coordinate arrays (no shapely objects: the fast path for millions of
rows); other geometries as a shapely array in which ``None`` marks a row without geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import shapely

from gis.errors import BadRequest


@dataclass
class SourceTable:
    """One layer of a source file, as arrays; row i is the i-th feature of the file.

    ``kinds`` says what each field holds (integer, number, boolean, datetime, date, string, or
    object for JSON; absent: judge by the values);
    ``declared_crs`` is the CRS the file states (EPSG code or WKT), ``crs_note`` how it was
    known when the file does not state it.
    """

    columns: dict[str, np.ndarray]
    geometry: np.ndarray | None = None
    xy: tuple[np.ndarray, np.ndarray] | None = None
    declared_crs: str | None = None
    crs_note: str = ""
    row_kind: str = "feature"
    first_row: int = 1
    row_ids: np.ndarray | None = None
    row_names: np.ndarray | None = None
    kinds: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        if self.xy is not None:
            return len(self.xy[0])
        return 0 if self.geometry is None else len(self.geometry)

    def label(self, index: int) -> str:
        """How row ``index`` is named in messages ("feature 12", "line 13", "node 7")."""
        number = index if self.row_ids is None else int(self.row_ids[index])
        if self.row_names is not None:
            return str(self.row_names[number])
        return f"{self.row_kind} {number + self.first_row}"

    def geometries(self) -> np.ndarray:
        """The geometries as a shapely array (points made from ``xy`` when needed)."""
        if self.geometry is None:
            assert self.xy is not None
            return shapely.points(*self.xy)
        return self.geometry

    def take(self, keep: np.ndarray) -> SourceTable:
        """The rows ``keep`` selects (a mask, or row numbers in the order wanted), still
        named by their place in the file."""
        ids = np.arange(len(self)) if self.row_ids is None else self.row_ids
        return replace(
            self,
            columns={k: v[keep] for k, v in self.columns.items()},
            geometry=None if self.geometry is None else self.geometry[keep],
            xy=None if self.xy is None else (self.xy[0][keep], self.xy[1][keep]),
            row_ids=ids[keep],
        )

    def renamed(self, mapping: dict[str, str]) -> SourceTable:
        """The same rows with fields renamed (``--map field=property``); BadRequest for a
        field the source lacks or two fields given one name."""
        missing = sorted(set(mapping) - set(self.columns))
        if missing:
            raise BadRequest(
                f"--map names fields the source does not have: {', '.join(missing)}; its fields "
                f"are: {', '.join(self.columns) or '(none)'}",
                code="unknown_field",
            )
        columns: dict[str, np.ndarray] = {}
        for name, values in self.columns.items():
            target = mapping.get(name, name)
            if target in columns:
                raise BadRequest(
                    f"two fields would both be named {target!r}; change --map",
                    code="duplicate_field",
                )
            columns[target] = values
        kinds = {mapping.get(k, k): v for k, v in self.kinds.items()}
        return replace(self, columns=columns, kinds=kinds)
