"""``cityhex incidents evaluation``: the evaluation of a period as a table (or JSON)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import typer
from rich.table import Table

from layers.db.engine import create_async_engine
from layers.incidents.evaluation import Compare, Comparison, GroupBy, evaluation
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="Incidents: the evaluation of departments, districts, inspectors.")
COLUMNS = {
    "on_time_registration_rate": "按时立案",
    "on_time_dispatch_rate": "按时派遣",
    "accurate_dispatch_rate": "准确派遣",
    "on_time_handling_rate": "按期处置",
    "on_time_verification_rate": "按期核查",
    "extension_rate": "延期",
    "rework_rate": "返工",
    "closing_rate": "结案",
    "self_handling_rate": "自行处置",
}
"""The rates the table shows, with their column headings."""


async def _evaluate(
    url: str, start: datetime, end: datetime, group_by: GroupBy, compare: Compare | None
) -> Comparison:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.connect() as conn:
            return await evaluation(conn, start, end, group_by, compare)
    finally:
        await engine.dispose()


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _table(body: dict) -> Table:
    compared = body["compare"] is not None
    change = ["Δ score"] if compared else []
    table = Table(body["group_by"], *COLUMNS.values(), "score 综合", "grade", *change)
    for group in [*body["groups"], {**body["total"], "label": "total 合计"}]:
        score = group["score"]
        row = [
            str(group["label"] or group["key"]),
            *(_percent(group["rates"][name]) for name in COLUMNS),
            "–" if score is None else f"{score:.1f}",
            group["grade"] or "–",
        ]
        if compared:
            delta = group["change"]["score"]
            row.append("–" if delta is None else f"{delta:+.1f}")
        table.add_row(*row)
    return table


@app.command("evaluation")
@reports_errors
def evaluation_command(
    start: datetime | None = typer.Option(None, "--from", help="Period start (default UTC)"),
    end: datetime | None = typer.Option(None, "--to", help="Period end, exclusive (default now)"),
    group_by: str = typer.Option("department", help="department, district or inspector"),
    compare: str | None = typer.Option(None, help="yoy (同比) or mom (环比)"),
    json: bool = typer.Option(False, "--json", help="Print the JSON of /incidents/evaluation"),
) -> None:
    """The figures of the period (default: the last 30 days), as GET /incidents/evaluation."""
    end = _utc(end) or datetime.now(UTC)
    start = _utc(start) or end - timedelta(days=30)
    result = asyncio.run(_evaluate(ready_database(), start, end, group_by, compare))  # type: ignore[arg-type]
    body = result.as_dict()
    if json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(_table(body))
    stages = Table(
        "stage (total)", "count", "mean h", "p90 h", title=f"{body['from']} – {body['to']}"
    )
    for name, stage in body["total"]["stages"].items():
        mean, p90 = stage["mean_hours"], stage["p90_hours"]
        stages.add_row(
            name,
            f"{stage['count']:,}",
            "–" if mean is None else f"{mean:.2f}",
            "–" if p90 is None else f"{p90:.2f}",
        )
    console.print(stages)
