"""Patrol against a real GPS track: fixes ingest (idempotent), patrolled cells, coverage and
on-duty minutes equal to shapely + h3, tracks split at gaps, off-post episodes with their
records and events, live positions, the staleness layer, the evaluation, and who may read
what (every patrol read refused to anonymous and app callers)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from layers.db.engine import create_async_engine
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.incidents.events import CHANNEL as EVENTS
from layers.patrol.fixes import ingest, prune_fixes
from layers.patrol.off_post import check_inspectors
from spatial_api.routers.events import missed
from tests.helpers import scalar
from tests.patrol import expected
from tests.patrol.conftest import PatrolCity

GAP = timedelta(seconds=120)
ACCURACY = 50.0
LIMIT = timedelta(minutes=15)


def post_track(city: PatrolCity, fixes: list, inspector: int) -> dict:
    """POST the fixes for ``inspector`` with an admin key (in batches of 100)."""
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    admin = city.key("admin")
    for lo in range(0, len(fixes), 100):
        body = {"inspector_id": inspector, "fixes": [f.as_json() for f in fixes[lo : lo + 100]]}
        r = city.client.post("/patrol/fixes", json=body, headers=admin)
        assert r.status_code == 200, r.text
        for k in totals:
            totals[k] += r.json()[k]
    return totals


def period(city: PatrolCity) -> tuple[datetime, datetime]:
    """A window around the whole track."""
    return city.track[0].ts - timedelta(minutes=5), city.track[-1].ts + timedelta(minutes=5)


@pytest.fixture(scope="module")
def posted(patrol_city: PatrolCity) -> PatrolCity:
    """The track sent for inspector 1 and for inspector 2 (the same walk, today)."""
    for inspector in (1, 2):
        totals = post_track(patrol_city, patrol_city.track, inspector)
        assert totals == {"accepted": len(patrol_city.track), "duplicate": 0, "rejected": 0}
    return patrol_city


def coverage(city: PatrolCity, inspector: int, lo: datetime, hi: datetime, key: dict) -> dict:
    r = city.client.get(
        "/patrol/coverage",
        params={"inspector": inspector, "from": lo.isoformat(), "to": hi.isoformat()},
        headers=key,
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("inspector", [1, 2])
@pytest.mark.parametrize("part", ["whole", "cut"])
def test_coverage_and_on_duty_equal_shapely(posted: PatrolCity, inspector: int, part: str) -> None:
    lo, hi = period(posted)
    if part == "cut":  # segments cut by the period's ends
        lo, hi = (
            posted.track[0].ts + timedelta(minutes=17.5),
            posted.track[0].ts + timedelta(minutes=61.3),
        )
    got = coverage(posted, inspector, lo, hi, posted.key("dispatcher"))
    fixes = expected.counted(posted.track, ACCURACY)
    mine = posted.assigned(inspector)
    cells = expected.patrolled(fixes, GAP, (lo, hi), mine)
    seconds = expected.seconds_inside(fixes, GAP, (lo, hi), mine)
    assert len(cells) > 3 and seconds > 60  # the track does cross this inspector's cells
    assert got["assigned_cells"] == len(mine)
    assert {int(c, 16) for c in got["patrolled_cells"]} == cells
    assert got["coverage"] == pytest.approx(len(cells) / len(mine), abs=1e-12)
    assert got["on_duty_minutes"] == pytest.approx(seconds / 60, abs=1e-6)


def test_inaccurate_fixes_are_ignored(patrol_city: PatrolCity) -> None:
    """Two fixes a minute apart in two of inspector 2's cells, the second 80 m inaccurate:
    only the first cell is patrolled and no segment (no on-duty time) is formed."""
    cells = [c for c, i in patrol_city.owner.items() if i == 2]
    a, b = (patrol_city.cells[c].centroid for c in (cells[0], cells[-1]))
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=15)
    fixes = [
        {"ts": at.isoformat(), "lon": a.x, "lat": a.y, "accuracy_m": 50.0},
        {
            "ts": (at + timedelta(seconds=60)).isoformat(),
            "lon": b.x,
            "lat": b.y,
            "accuracy_m": 80.0,
        },
    ]
    r = patrol_city.client.post(
        "/patrol/fixes", json={"inspector_id": 2, "fixes": fixes}, headers=patrol_city.key("admin")
    )
    assert r.json()["accepted"] == 2
    got = coverage(
        patrol_city,
        2,
        at - timedelta(minutes=1),
        at + timedelta(minutes=5),
        patrol_city.key("dispatcher"),
    )
    assert got["patrolled_cells"] == [format(cells[0], "x")]
    assert got["on_duty_minutes"] == 0


def test_fixes_sent_out_of_order_give_the_same_figures(patrol_city: PatrolCity) -> None:
    """The walk three days ago for inspector 2: every other fix first, then the rest in
    reverse order (a phone catching up), so each late fix breaks a stored segment."""
    back = timedelta(days=3)
    track = [type(f)(f.ts - back, f.lon, f.lat, f.accuracy_m) for f in patrol_city.track]
    admin = patrol_city.key("admin")
    for part in (track[::2], track[1::2][::-1]):
        for lo in range(0, len(part), 40):
            body = {"inspector_id": 2, "fixes": [f.as_json() for f in part[lo : lo + 40]]}
            r = patrol_city.client.post("/patrol/fixes", json=body, headers=admin)
            assert r.status_code == 200
    lo, hi = track[0].ts - timedelta(minutes=1), track[-1].ts + timedelta(minutes=1)
    got = coverage(patrol_city, 2, lo, hi, patrol_city.key("dispatcher"))
    fixes = expected.counted(track, ACCURACY)
    mine = patrol_city.assigned(2)
    assert {int(c, 16) for c in got["patrolled_cells"]} == expected.patrolled(
        fixes, GAP, (lo, hi), mine
    )
    assert got["on_duty_minutes"] == pytest.approx(
        expected.seconds_inside(fixes, GAP, (lo, hi), mine) / 60, abs=1e-6
    )


def test_staleness_marks_exactly_the_patrolled_cells(posted: PatrolCity) -> None:
    fixes = expected.counted(posted.track, ACCURACY)
    want = expected.patrolled(fixes, GAP, period(posted), posted.cells)
    with psycopg.connect(posted.url) as conn:
        got = {h for (h,) in conn.execute("SELECT h3 FROM patrol_staleness WHERE days = 0")}
        (total,) = conn.execute("SELECT count(*) FROM patrol_staleness").fetchone()
    assert got == want
    assert total == len(posted.cells)


def test_tracks_are_split_at_gaps(posted: PatrolCity) -> None:
    lo, hi = period(posted)
    r = posted.client.get(
        "/patrol/tracks",
        params={"inspector": 2, "from": lo.isoformat(), "to": hi.isoformat()},
        headers=posted.key("dispatcher"),
    )
    assert r.status_code == 200
    fixes = expected.counted(posted.track, ACCURACY)
    runs = [[fixes[0]]]
    for a, b in itertools.pairwise(fixes):
        if b.ts - a.ts > GAP:
            runs.append([])
        runs[-1].append(b)
    features = r.json()["features"]
    assert len(features) == len(runs) > 1
    for feature, run in zip(features, runs, strict=True):
        coords = feature["geometry"]["coordinates"]
        if len(run) == 1:
            coords = [coords]
        flat = [x for pair in coords for x in pair]
        assert flat == pytest.approx([x for f in run for x in (f.lon, f.lat)], abs=1e-7)
        assert feature["properties"]["fixes"] == len(run)


def test_resent_batch_counts_once_and_bad_rows_are_refused(patrol_city: PatrolCity) -> None:
    day = timedelta(days=2)
    fixes = [f.as_json() | {"ts": (f.ts - day).isoformat()} for f in patrol_city.track[:150]]
    bad = [
        {"ts": fixes[0]["ts"], "lon": float("nan"), "lat": 22.5},
        {"lon": 114.0, "lat": 22.5},
        {"ts": fixes[0]["ts"], "lon": 114.0, "lat": 95.0},
        {"ts": "2026-01-01T00:00:00", "lon": 114.0, "lat": 22.5},
        "nonsense",
    ]
    key = patrol_city.key("inspector", 3)
    body = json.dumps({"fixes": fixes + bad}, allow_nan=True)
    headers = key | {"Content-Type": "application/json"}
    first = patrol_city.client.post("/patrol/fixes", content=body, headers=headers).json()
    again = patrol_city.client.post("/patrol/fixes", content=body, headers=headers).json()
    assert (first["accepted"], first["duplicate"], first["rejected"]) == (150, 0, 5)
    assert (again["accepted"], again["duplicate"], again["rejected"]) == (0, 150, 5)
    assert [r["code"] for r in first["rejections"]] == [
        "non_finite_value",
        "invalid_timestamp",
        "out_of_range",
        "invalid_timestamp",
        "malformed",
    ]
    with psycopg.connect(patrol_city.url) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM patrol_fixes WHERE inspector_id = 3"
        ).fetchone()[0]
        days = conn.execute("SELECT count(*) FROM patrol_fixes_partitions()").fetchone()[0]
    assert stored == 150 and days >= 1


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ("anonymous", {"fixes": []}, 401),
        ("app", {"fixes": []}, 403),
        ("dispatcher", {"fixes": []}, 403),
        ("inspector-1", {"inspector_id": 2, "fixes": []}, 403),
        ("inspector-none", {"fixes": []}, 403),
        ("admin", {"fixes": []}, 400),
        ("admin", {"inspector_id": 999, "fixes": [{"ts": 1.7e9, "lon": 1, "lat": 1}]}, 422),
        ("inspector-1", {"fixes": "x"}, 400),
        ("inspector-1", {"fixes": [{"ts": 1.7e9, "lon": 1, "lat": 1}] * 10_001}, 413),
    ],
)
def test_fix_senders_and_bad_batches(
    patrol_city: PatrolCity, headers: str, body: dict, status: int
) -> None:
    keys = {
        "anonymous": {},
        "app": patrol_city.key("app"),
        "dispatcher": patrol_city.key("dispatcher"),
        "inspector-1": patrol_city.key("inspector", 1),
        "inspector-none": patrol_city.key("inspector"),
        "admin": patrol_city.key("admin"),
    }
    with psycopg.connect(patrol_city.url) as conn:
        before = conn.execute("SELECT count(*) FROM patrol_fixes").fetchone()[0]
    r = patrol_city.client.post("/patrol/fixes", json=body, headers=keys[headers])
    assert r.status_code == status
    assert r.json()["status"] == status and r.json()["code"]
    with psycopg.connect(patrol_city.url) as conn:
        assert conn.execute("SELECT count(*) FROM patrol_fixes").fetchone()[0] == before


READS = [
    "/patrol/coverage?inspector=1",
    "/patrol/coverage?group_by=district",
    "/patrol/tracks?inspector=1",
    "/patrol/live",
    "/patrol/evaluation?inspector=1",
    "/patrol/shifts",
    "/tiles/patrol_staleness/14/13382/7138.mvt",
    "/collections/patrol_staleness/items?limit=1",
]


@pytest.mark.parametrize("path", READS)
def test_every_patrol_read_per_role(posted: PatrolCity, path: str) -> None:
    anonymous = posted.client.get(path)
    assert anonymous.status_code == 401, anonymous.text
    for role in ("app", "editor"):
        assert posted.client.get(path, headers=posted.key(role)).status_code == 403
    assert posted.client.get(path, headers=posted.key("dispatcher")).status_code == 200
    assert posted.client.get(path, headers=posted.key("admin")).status_code == 200
    own = posted.client.get(path, headers=posted.key("inspector", 1))
    other = posted.client.get(
        path.replace("inspector=1", "inspector=2"), headers=posted.key("inspector", 1)
    )
    if path.startswith("/patrol/shifts"):
        assert own.status_code == 403  # schedules are set by dispatchers
    else:
        assert own.status_code == 200
        if "inspector=1" in path:
            assert other.status_code == 403


def test_an_inspector_sees_only_themself(posted: PatrolCity) -> None:
    key = posted.key("inspector", 2)
    table = posted.client.get("/patrol/coverage?group_by=district", headers=key).json()
    assert [row["inspector_id"] for row in table["inspectors"]] == [2]
    mine = posted.client.get("/patrol/coverage", headers=key).json()
    assert mine["inspector_id"] == 2


def test_centre_table_sums_its_inspectors(posted: PatrolCity) -> None:
    lo, hi = period(posted)
    table = posted.client.get(
        "/patrol/coverage",
        params={"group_by": "district", "from": lo.isoformat(), "to": hi.isoformat()},
        headers=posted.key("dispatcher"),
    ).json()
    rows = {row["inspector_id"]: row for row in table["inspectors"]}
    assert set(rows) == {1, 2}
    fixes = expected.counted(posted.track, ACCURACY)
    for inspector, row in rows.items():
        want = expected.patrolled(fixes, GAP, (lo, hi), posted.assigned(inspector))
        assert row["patrolled_cells"] == len(want)
    (district,) = table["districts"]
    assert district["district"] == "440304"
    assert district["patrolled_cells"] == sum(r["patrolled_cells"] for r in rows.values())
    assert district["coverage"] == pytest.approx(
        district["patrolled_cells"] / sum(r["assigned_cells"] for r in rows.values())
    )


def test_live_and_audited_reads(posted: PatrolCity) -> None:
    admin = posted.key("admin")
    r = posted.client.put(
        "/patrol/shifts",
        json={
            "inspector_id": 2,
            "start_time": "00:00",
            "end_time": "23:59:59",
            "working_days_only": False,
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    dispatcher = posted.key("dispatcher")
    live = posted.client.get("/patrol/live", headers=dispatcher).json()
    last = expected.counted(posted.track, ACCURACY)[-1]
    by_id = {f["id"]: f for f in live["features"]}
    now = datetime.now(UTC)
    local = now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).time()
    if local.replace(microsecond=0).isoformat() < "23:59:59":
        assert by_id[2]["geometry"]["coordinates"] == [last.lon, last.lat]
        assert by_id[2]["properties"]["ts"] == last.ts.isoformat()
        assert 1 not in by_id  # no shift
    posted.client.get("/patrol/tracks?inspector=2", headers=dispatcher)
    with psycopg.connect(posted.url) as conn:
        routes = {
            r[0]
            for r in conn.execute(
                "SELECT route FROM audit_log "
                "WHERE action = 'personal.read' AND route LIKE '/patrol/%'"
            )
        }
    assert {"/patrol/live", "/patrol/tracks"} <= routes


def test_off_post_episode_has_its_record_and_events(patrol_city: PatrolCity) -> None:
    """Yesterday's copy of the walk for inspector 1 (whose cells are the east end), on a shift
    from the first fix to five minutes after the last, sent minute by minute while the
    server's check runs every minute: the episodes, their records and their events are those
    shapely finds."""
    day = timedelta(days=1)
    track = [type(f)(f.ts - day, f.lon, f.lat, f.accuracy_m) for f in patrol_city.track]
    shift = (track[0].ts, track[-1].ts + timedelta(minutes=5))
    fixes = expected.counted(track, ACCURACY)
    inside = expected.inside_intervals(fixes, GAP, shift, patrol_city.assigned(1))
    want = expected.away(shift, inside, LIMIT)
    assert len(want) >= 2 and want[-1][1] == shift[1] and want[0][1] < shift[1]

    zone = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")
    with psycopg.connect(patrol_city.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO patrol_schedules (inspector_id, start_time, end_time, working_days_only) "
            "VALUES (1, %s, %s, false)",
            (shift[0].astimezone(zone).time(), shift[1].astimezone(zone).time()),
        )
        conn.execute(f"LISTEN {EVENTS}")

        async def drive() -> int:
            engine = create_async_engine(patrol_city.url)
            try:
                sent, t = 0, shift[0]
                while t <= shift[1] + timedelta(minutes=3):
                    batch = [f.as_json() for f in track if t - timedelta(minutes=1) < f.ts <= t]
                    if batch:
                        await ingest(engine, 1, batch, now=t)
                    async with engine.connect() as c:
                        sent += await check_inspectors(c, t)
                    t += timedelta(minutes=1)
                return sent
            finally:
                await engine.dispose()

        asyncio.run(drive())
        events = [json.loads(n.payload) for n in conn.notifies(timeout=0.5, stop_after=100)]
        records = conn.execute(
            "SELECT id, started_at, ended_at, ended_by FROM patrol_off_post "
            "WHERE inspector_id = 1 ORDER BY started_at"
        ).fetchall()
    assert len(records) == len(want)
    for (_, started, ended, by), (lo, hi) in zip(records, want, strict=True):
        assert abs((started - lo).total_seconds()) < 0.01
        assert abs((ended - hi).total_seconds()) < 0.01
        assert by == ("shift_end" if hi == shift[1] else "back")
    patrol = [e for e in events if e["type"].startswith("inspector.") and e["inspector_id"] == 1]
    expect = []
    for rid, _, _, by in records:
        expect.append(("inspector.off_post", rid))
        if by == "back":
            expect.append(("inspector.back", rid))
    assert sorted((e["type"], e["off_post_id"]) for e in patrol) == sorted(expect)

    async def replay() -> list:
        engine = create_async_engine(patrol_city.url)
        try:
            return await missed(engine, 0)
        finally:
            await engine.dispose()

    replayed = [e for e in asyncio.run(replay()) if e.type.startswith("inspector.")]
    mine = [e.id for e in replayed if json.loads(e.data)["inspector_id"] == 1]
    assert sorted(mine) == sorted(e["event_id"] for e in patrol)

    # the coverage answer lists the episodes, and its 在岗率 is shapely's time in the cells
    # during the shift over the shift's length
    got = coverage(
        patrol_city,
        1,
        shift[0] - timedelta(hours=1),
        shift[1] + timedelta(hours=1),
        patrol_city.key("dispatcher"),
    )
    assert [o["id"] for o in got["off_post"]] == [r[0] for r in records]
    on_shift = expected.seconds_inside(fixes, GAP, shift, patrol_city.assigned(1))
    length = (shift[1] - shift[0]).total_seconds()
    assert got["shift_minutes"] == pytest.approx(length / 60, abs=1e-9)
    assert got["on_duty_rate"] == pytest.approx(on_shift / length, abs=1e-9)


def test_evaluation_counts_reports_and_checks(posted: PatrolCity) -> None:
    """Cases in inspector 2's cells on working days (Mon 30 Nov – Wed 2 Dec 2026): one
    inspector report registered in 30 min, one public report cancelled the next afternoon,
    one resolution checked in 30 min and one reworked two days later."""
    cell = next(c for c, i in posted.owner.items() if i == 2)
    at = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shenzhen
    steps = [
        ("inspector", [("report", at), ("register", at + timedelta(minutes=30))]),
        ("public", [("report", at), ("cancel", at + timedelta(hours=31))]),
        (
            "inspector",
            [
                ("report", at - timedelta(days=9)),
                ("resolve", at + timedelta(hours=1)),
                ("verify", at + timedelta(hours=1.5)),
            ],
        ),
        (
            "public",
            [
                ("report", at - timedelta(days=9)),
                ("resolve", at + timedelta(hours=1)),
                ("rework", at + timedelta(days=2)),
            ],
        ),
    ]
    with psycopg.connect(posted.url, autocommit=True) as conn:
        for source, actions in steps:
            (case,) = conn.execute(
                "INSERT INTO incidents (category_code, status, source, inspector_id, h3, "
                "reported_at, geom) VALUES ('0101', 'reported', %s, 2, %s, %s, "
                "ST_SetSRID(ST_MakePoint(114.05, 22.55), 4326)) RETURNING id",
                (source, cell, actions[0][1]),
            ).fetchone()
            for action, when in actions:
                conn.execute(
                    "INSERT INTO incident_transitions (incident_id, action, to_status, at) "
                    "VALUES (%s, %s, 'x', %s)",
                    (case, action, when),
                )
    r = posted.client.get(
        "/patrol/evaluation",
        params={
            "inspector": 2,
            "from": "2026-11-30T00:00:00+08:00",
            "to": "2026-12-03T00:00:00+08:00",
        },
        headers=posted.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    (row,) = r.json()["inspectors"]
    assert (row["reports"], row["registered"], row["valid_report_rate"]) == (1, 1, 1.0)
    assert (row["verifications"], row["verified_on_time"]) == (2, 1)
    assert (row["checks"], row["checked_on_time"], row["on_time_check_rate"]) == (2, 1, 0.5)
    assert row["coverage"] == 0.0 and not row["on_duty_rate"]  # no fixes then


def test_prune_drops_the_old_days_only(patrol_city: PatrolCity) -> None:
    """Fixes 20 days old and 1 day old: pruning at 10 days drops the old day's partition
    (and its segments), and keeps the other."""
    admin = patrol_city.key("admin")
    now = datetime.now(UTC).replace(microsecond=0)
    for age in (20, 1):
        fixes = [
            f.as_json() | {"ts": (now - timedelta(days=age, seconds=-10 * i)).isoformat()}
            for i, f in enumerate(patrol_city.track[:30])
        ]
        r = patrol_city.client.post(
            "/patrol/fixes", json={"inspector_id": 3, "fixes": fixes}, headers=admin
        )
        assert r.json()["accepted"] == 30

    def counts() -> tuple[int, int]:
        with psycopg.connect(patrol_city.url) as conn:
            old = conn.execute(
                "SELECT count(*) FROM patrol_fixes WHERE ts < now() - interval '11 days'"
            ).fetchone()[0]
            pieces = conn.execute(
                "SELECT count(*) FROM patrol_pieces WHERE t1 < now() - interval '11 days'"
            ).fetchone()[0]
        return old, pieces

    assert counts()[0] >= 30 and counts()[1] > 0

    async def prune(dry_run: bool) -> list[str]:
        engine = create_async_engine(patrol_city.url)
        try:
            async with engine.begin() as conn:
                return await prune_fixes(conn, timedelta(days=10), dry_run=dry_run)
        finally:
            await engine.dispose()

    with psycopg.connect(patrol_city.url) as conn:
        want = {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'patrol_fixes'::regclass "
                "AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' "
                "<= now() - interval '10 days'"
            )
        }
    assert want and set(asyncio.run(prune(True))) == want
    assert set(asyncio.run(prune(False))) == want
    assert counts() == (0, 0)
    with psycopg.connect(patrol_city.url) as conn:
        recent = conn.execute(
            "SELECT count(*) FROM patrol_fixes "
            "WHERE inspector_id = 3 AND ts > now() - interval '2 days'"
        ).fetchone()[0]
    assert recent == 30


def test_district_dispatchers_reach_inspectors_by_where_they_patrol(posted: PatrolCity) -> None:
    """Inspector 2's cells move to a second district while their user record stays in the
    first: a dispatcher of the second reaches inspector 2 only, one of the first reaches
    inspector 1 only — for single reads, lists and the live map alike."""
    with psycopg.connect(posted.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (2, '440305', '南山区', "
            "ST_Multi(ST_MakeEnvelope(113.8, 22.4, 113.9, 22.7, 4326)))"
        )
        conn.execute("UPDATE grid_cells SET district_id = 2 WHERE inspector_id = 2")
        keys = {}
        for code in ("440304", "440305"):
            token = create_key(conn, "dispatcher", f"d-{code}", None, Scope.of(districts=[code]))
            keys[code] = {"Authorization": f"Bearer {token}"}
    try:
        assert scalar(posted.url, "SELECT district_id FROM users WHERE id = 2") == 1
        for code, mine, other in (("440304", 1, 2), ("440305", 2, 1)):
            key = keys[code]
            assert (
                posted.client.get(f"/patrol/coverage?inspector={mine}", headers=key).status_code
                == 200
            )
            refused = posted.client.get(f"/patrol/coverage?inspector={other}", headers=key)
            assert refused.status_code == 403 and refused.json()["code"] == "out_of_scope"
            table = posted.client.get("/patrol/coverage?group_by=district", headers=key).json()
            assert [row["inspector_id"] for row in table["inspectors"]] == [mine]
            # counted under the district of their cells, never one outside the reader's
            assert [row["district"] for row in table["inspectors"]] == [code]
            assert [row["district"] for row in table["districts"]] == [code]
            marks = posted.client.get("/patrol/evaluation", headers=key).json()
            assert [row["district"] for row in marks["inspectors"]] == [code]
            tracks = posted.client.get(f"/patrol/tracks?inspector={other}", headers=key)
            assert tracks.status_code == 403
    finally:
        with psycopg.connect(posted.url, autocommit=True) as conn:
            conn.execute("UPDATE grid_cells SET district_id = 1 WHERE district_id = 2")
            conn.execute("DELETE FROM districts WHERE id = 2")
