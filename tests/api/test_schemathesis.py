"""Schemathesis over the whole /openapi.json, as an anonymous caller and as an admin, on the
demo city at a small scale in a database of its own (the admin run writes to it).

Schemathesis's own engine runs (as its command line does) against the app in process: its
examples, coverage and fuzzing phases, with a fixed seed, a few fuzzed examples per
operation, no shrinking and no deadline, so a run is repeatable and takes a bounded time.
Any 5xx fails it, and so does an answer whose status, content type or JSON body the
operation's OpenAPI does not describe. The number of cases sent per role is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.config import OutputConfig, SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic

from etl.demo.loader import load_demo
from spatial_api.app import create_app
from tests.helpers import make_key

SCALE = 0.01
SEED = 20260119
MAX_EXAMPLES = 20
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def config(headers: dict[str, str]) -> SchemathesisConfig:
    """The bounded, repeatable configuration of one run, sending ``headers``."""
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "no-shrink": True,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "continue-on-failure": True,
            "request-timeout": 30,
            "operations": [
                # a live stream ends only when the client goes: read its start, then leave
                {"include-path": "/events", "request-timeout": 0.5, "max-stream-events": 1},
                # a valid build replaces the city's grid with one of up to 3 million cells
                # (minutes of work, and every later grid call slower): its input checks are
                # fuzzed here, its builds are tests/grid/test_grid_build.py's
                {"include-path": "/grid/build", "generation": {"mode": "negative"}},
                # revoking or rotating a key the run may hold (the admin's own) would leave
                # the rest of the run anonymous: their input checks are fuzzed here, their
                # effects are tests/auth/test_key_lifecycle.py's
                {"include-path-regex": "^/auth/keys/", "generation": {"mode": "negative"}},
            ],
        }
    )


@pytest.fixture(scope="module")
def fuzz_app(new_database: Callable[..., str]) -> tuple[FastAPI, str]:
    """The app on a fresh database holding the demo city; the app and the database URL."""
    url = new_database("schemathesis_city")
    load_demo(url, SCALE, progress=False)
    return create_app(url), url


def run(app: FastAPI, headers: dict[str, str]) -> tuple[Statistic, float]:
    """Run schemathesis over the app's whole schema; its statistics and the seconds taken."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config(headers))
    statistic = Statistic()
    start = time.monotonic()
    errors: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    assert not errors, "\n".join(errors)
    return statistic, time.monotonic() - start


def report(statistic: Statistic) -> str:
    """The failures, one block per case, as schemathesis words them."""
    output = OutputConfig()
    blocks = []
    for label, groups in statistic.failures.items():
        for group in groups.values():
            blocks.append(f"{label}\n{group.format(index=None, curl=None, config=output)}")
    return "\n\n".join(blocks)


@pytest.mark.parametrize("role", ["anonymous", "admin"])
def test_no_server_error_and_every_answer_as_documented(
    fuzz_app: tuple[FastAPI, str], role: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app, url = fuzz_app
    headers = make_key(url, role) if role != "anonymous" else {}
    statistic, seconds = run(app, headers)
    with capsys.disabled():
        print(
            f"\nschemathesis as {role}: {statistic.total_cases} cases over "
            f"{len(statistic.tested_operations)} operations in {seconds:.0f} s"
        )
    assert statistic.total_cases > 0
    assert not statistic.failures, report(statistic)
