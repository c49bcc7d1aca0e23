"""How an import runs: the target layer, the source's CRS and fields, the write mode."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from gis.errors import BadRequest

Mode = Literal["append", "upsert", "replace"]
InvalidPolicy = Literal["reject", "repair", "skip"]
MODES: tuple[str, ...] = ("append", "upsert", "replace")
INVALID_POLICIES: tuple[str, ...] = ("reject", "repair", "skip")


@dataclass(frozen=True)
class ImportOptions:
    """Every choice of one import; the defaults are the safe ones (append, reject invalid)."""

    layer: str
    src_crs: str | None = None
    mode: Mode = "append"
    key: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    invalid: InvalidPolicy = "reject"
    dry_run: bool = False
    source_layer: str | None = None
    lon_field: str | None = None
    lat_field: str | None = None
    wkt_field: str | None = None
    create: bool = False
    time_field: str | None = None
    title: str | None = None
    public: bool = False
    osm_preset: str | None = None
    division: str | None = None
    actor: str = "import"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadRequest(
                f"mode must be one of {', '.join(MODES)}, not {self.mode!r}", code="invalid_mode"
            )
        if self.invalid not in INVALID_POLICIES:
            raise BadRequest(
                f"invalid must be one of {', '.join(INVALID_POLICIES)}, not {self.invalid!r}",
                code="invalid_policy",
            )
        if self.mode == "upsert" and not self.key:
            raise BadRequest(
                "--mode upsert needs --key FIELD: the property that identifies a feature",
                code="missing_key",
            )
        if self.create and self.mode != "append":
            raise BadRequest("--create makes a new layer: it takes no --mode", code="invalid_mode")
        if self.time_field and not self.create:
            raise BadRequest(
                "--time-field names the time column of a layer made with --create",
                code="invalid_option",
            )
        if self.division is not None and not (len(self.division) == 6 and self.division.isdigit()):
            raise BadRequest(
                f"--division must be a 6-digit division code, not {self.division!r}",
                code="invalid_division",
            )


def parse_field_map(pairs: Iterable[str]) -> dict[str, str]:
    """``field=property`` pairs as a dict; BadRequest for a pair without '='."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        for item in filter(None, (p.strip() for p in pair.split(","))):
            source, sep, target = item.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise BadRequest(f"--map takes field=property, not {item!r}", code="invalid_map")
            mapping[source.strip()] = target.strip()
    return mapping


def options_from_input(given: Mapping[str, Any], actor: str) -> ImportOptions:
    """The options a user asked for, as ``cityhex import`` flags or the import form's fields.

    ``given`` holds the choices under the names of ImportOptions' fields, ``field_map`` as
    ``field=property`` pairs; other names in it (the file, output switches) are not options
    and are left out. BadRequest for a bad pair or an inconsistent set of choices.
    """
    names = {f.name for f in fields(ImportOptions)} - {"actor"}
    chosen = {name: value for name, value in given.items() if name in names}
    chosen["field_map"] = parse_field_map(chosen.get("field_map") or ())
    return ImportOptions(**chosen, actor=actor)
