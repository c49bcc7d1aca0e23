"""mkdocs hooks: the parts of the manual that are read from the code, so they cannot drift.

A page asks for generated text with a marker line:

- ``<!-- cityhex:settings -->``: every ``CITYHEX_*`` variable of the pydantic settings classes
  (name, type, default, meaning), found by reading the source for ``BaseSettings`` classes;
- ``<!-- cityhex:packages -->``: every package and module with the first paragraph of its docstring;
- ``<!-- cityhex:contracts -->``: the import-linter contracts of ``pyproject.toml``;
- ``<!-- cityhex:model a.b.Model -->``: a table of a pydantic model's fields.

It also checks, as warnings (which fail ``mkdocs build --strict``), that every ``CITYHEX_*``
name the manual mentions exists in the code, and that ``configuration.md`` mentions every
``CITYHEX_*`` variable the code reads from ``os.environ`` outside the settings classes.
"""

from __future__ import annotations

import ast
import importlib
import logging
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("gis", "layers", "tiles", "etl", "styles", "spatial_api")
SKIPPED_DIRS = {"versions", "__pycache__", "node_modules"}
ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](CITYHEX_[A-Z0-9_]+)["']""")
MODEL_MARKER = re.compile(r"<!-- cityhex:model ([\w.]+) -->")
ENV_NAME = re.compile(r"\bCITYHEX_[A-Z0-9_]*[A-Z0-9]\b")
FALLBACK_MEANINGS = {
    "CITYHEX_HOST": "Interface `cityhex serve` listens on.",
    "CITYHEX_PORT": "Port `cityhex serve` listens on.",
    "CITYHEX_WORKERS": "Worker processes of `cityhex serve`.",
    "CITYHEX_HEALTH_TIMEOUT_SECONDS": "How long `/healthz` waits for the database before 503.",
    "CITYHEX_WORKING_HOURS": "Working periods of a working day (`HH:MM-HH:MM`, comma list), "
    "used to count deadlines in working hours.",
    "CITYHEX_TIMEZONE": "IANA time zone of the working day and the work calendar.",
}
"""Meanings of settings fields that have no attribute docstring in the code yet; a docstring
in the code always wins."""

log = logging.getLogger("mkdocs.hooks.cityhex")


@dataclass(frozen=True)
class Variable:
    """One environment variable of a settings class."""

    name: str
    type: str
    default: str
    meaning: str


def source_files() -> list[Path]:
    """The project's Python modules, migrations' revision files left out."""
    files = []
    for package in CODE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts):
                files.append(path)
    return files


def module_name(path: Path) -> str:
    """The dotted module name of a source file."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def base_name(node: ast.expr) -> str:
    """The last name of a base class expression (``BaseSettings`` in ``x.BaseSettings``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


@cache
def settings_classes() -> list[tuple[type, ast.ClassDef]]:
    """Every class of the project that derives from BaseSettings, with its source node."""
    found = []
    for path in sorted(source_files(), key=layer_order):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and "BaseSettings" in map(base_name, node.bases):
                module = importlib.import_module(module_name(path))
                found.append((getattr(module, node.name), node))
    return found


def attribute_docstrings(node: ast.ClassDef) -> dict[str, str]:
    """The string literal written under each annotated field of a class body."""
    docs = {}
    for field, after in pairwise(node.body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = " ".join(after.value.value.split())
    return docs


def type_text(annotation: Any) -> str:
    """A short name of a field's type: ``str | None``, ``Path``, ``dict[str, str]``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        return f"{type_text(origin)}[{', '.join(type_text(arg) for arg in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def bounds_text(metadata: list[Any]) -> str:
    """The numeric bounds among a field's constraints, as ``≥ 0, ≤ 5000``."""
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = []
    for item in metadata:
        for attr, sign in signs.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(found)


def default_text(field: Any) -> str:
    """A field's default as it would be written in the environment or a TOML file."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if value != "" else '`""`'


def env_name(settings: type, name: str, field: Any) -> str:
    """The environment variable pydantic-settings reads for a field."""
    alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
    if alias:
        return alias.upper()
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def settings_variables(settings: type, node: ast.ClassDef) -> list[Variable]:
    """The variables of one settings class, in the order the class declares them."""
    docs = attribute_docstrings(node)
    variables = []
    for name, field in settings.model_fields.items():
        env = env_name(settings, name, field)
        meaning = field.description or docs.get(name) or FALLBACK_MEANINGS.get(env, "")
        kind = type_text(field.annotation)
        bounds = bounds_text(field.metadata)
        variables.append(
            Variable(env, f"{kind} ({bounds})" if bounds else kind, default_text(field), meaning)
        )
    return variables


def cell(text: str) -> str:
    """Docstring text as a Markdown table cell: ``literal`` as `literal`, and pipes outside
    code spans escaped (inside them the table keeps them whole)."""
    parts = text.replace("``", "`").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def settings_markdown() -> str:
    """One table per settings class: variable, type, default, meaning."""
    sections = []
    for settings, node in settings_classes():
        intro = " ".join((settings.__doc__ or "").split())
        variables = settings_variables(settings, node)
        for v in variables:
            if not v.meaning:
                log.warning("docs: %s (%s) has no description", v.name, settings.__name__)
        rows = [
            f"| `{v.name}` | {cell(f'`{v.type}`')} | {cell(v.default)} | {cell(v.meaning)} |"
            for v in variables
        ]
        sections.append(
            "\n".join(
                [
                    f"### {settings.__name__}",
                    "",
                    f"`{settings.__module__}.{settings.__name__}`: {intro}",
                    "",
                    "| variable | type | default | meaning |",
                    "|---|---|---|---|",
                    *rows,
                ]
            )
        )
    return "\n\n".join(sections)


def summary(path: Path) -> str:
    """The first paragraph of a module's docstring on one line, or an empty string."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def layer_order(path: Path) -> tuple[int, Path]:
    """Sort key: the packages in their layer order (gis first), then by path."""
    return CODE_PACKAGES.index(path.relative_to(ROOT).parts[0]), path


def packages_markdown() -> str:
    """Every package, then a table of its modules with the first paragraph of their docstrings."""
    sections = []
    packages = sorted(
        {p.parent for p in source_files() if p.name == "__init__.py"}, key=layer_order
    )
    for package in packages:
        modules = sorted(p for p in package.glob("*.py") if p.name != "__init__.py")
        subpackages = sorted(p.parent for p in package.glob("*/__init__.py"))
        if not modules and not subpackages:
            continue
        rows = [f"| `{p.name}` | {cell(summary(p)) or '—'} |" for p in modules]
        rows += [
            f"| `{p.name}/` | {cell(summary(p / '__init__.py')) or '—'} |" for p in subpackages
        ]
        sections.append(
            "\n".join(
                [
                    f"### `{module_name(package / '__init__.py')}`",
                    "",
                    summary(package / "__init__.py"),
                    "",
                    "| module | what it holds |",
                    "|---|---|",
                    *rows,
                ]
            )
        )
    return "\n\n".join(sections)


def model_markdown(dotted: str) -> str:
    """A table of a pydantic model's fields: name, type, default, meaning."""
    module_path, _, name = dotted.rpartition(".")
    model = getattr(importlib.import_module(module_path), name)
    path = ROOT / (module_path.replace(".", "/") + ".py")
    node = next(
        n
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(n, ast.ClassDef) and n.name == name
    )
    docs = attribute_docstrings(node)
    rows = []
    for field_name, field in model.model_fields.items():
        kind = cell(f"`{type_text(field.annotation)}`")
        meaning = cell(field.description or docs.get(field_name, ""))
        rows.append(f"| `{field_name}` | {kind} | {cell(default_text(field))} | {meaning} |")
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *rows])


def contracts_markdown() -> str:
    """The import-linter contracts of pyproject.toml as a list."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config.get("tool", {}).get("importlinter", {}).get("contracts", [])
    if not contracts:
        return "No import-linter contracts are configured in `pyproject.toml`."
    lines = []
    for contract in contracts:
        if contract["type"] == "layers":
            chain = " → ".join(f"`{layer}`" for layer in contract["layers"])
            rule = f"{chain}; each may import what stands to its right, `a | b` not each other"
        elif contract["type"] == "forbidden":
            sources = ", ".join(f"`{m}`" for m in contract["source_modules"])
            banned = ", ".join(f"`{m}`" for m in contract["forbidden_modules"])
            rule = f"{sources} may not import {banned}"
        elif contract["type"] == "independence":
            rule = "independent: " + ", ".join(f"`{m}`" for m in contract["modules"])
        else:
            rule = f"a `{contract['type']}` contract"
        lines.append(f"- **{contract['name']}**: {rule}.")
    return "\n".join(lines)


@cache
def settings_names() -> frozenset[str]:
    """The variables of every settings class."""
    return frozenset(v.name for s, node in settings_classes() for v in settings_variables(s, node))


@cache
def environ_reads() -> dict[str, list[str]]:
    """CITYHEX_* variables read straight from the environment, with the modules reading them."""
    reads: dict[str, list[str]] = {}
    for path in source_files():
        for name in ENV_READ.findall(path.read_text(encoding="utf-8")):
            reads.setdefault(name, []).append(module_name(path))
    return reads


GENERATORS = {
    "<!-- cityhex:settings -->": settings_markdown,
    "<!-- cityhex:packages -->": packages_markdown,
    "<!-- cityhex:contracts -->": contracts_markdown,
}


def on_config(config: Any) -> Any:
    """Make the project importable from the repository the manual is built in."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers with generated text and check the variables the page names."""
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    markdown = MODEL_MARKER.sub(lambda m: model_markdown(m[1]), markdown)
    reads = environ_reads()
    named = set(ENV_NAME.findall(markdown))
    for name in sorted(named - settings_names() - set(reads)):
        log.warning("docs: %s names %s, which the code does not read", page.file.src_uri, name)
    if page.file.src_uri == "configuration.md":
        for name in sorted(set(reads) - settings_names() - named):
            where = ", ".join(reads[name])
            log.warning("docs: configuration.md does not list %s (read in %s)", name, where)
    return markdown
