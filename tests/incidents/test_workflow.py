"""The case workflow over HTTP, checked against the lifecycle written out here from DESIGN.md.

``SPEC`` is this test's own statement of the machine: (state, extension pending?) → action →
(next state, pending after, role). Every path from a report to an end state that loops at
most once is walked; from every reachable state every other action is refused with 409 and
every legal action by the wrong role with 403, and neither writes anything.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import psycopg
import pytest

from tests.helpers import City

D, V, S = "dispatcher", "inspector", "editor"  # V verifies; editor keys are department staff


def _holding(state: str, pending: bool) -> dict[str, tuple[str, bool, str]]:
    """What can happen while a department holds the case (pending: an extension is asked)."""
    moves = {
        "hand_back": ("registered", False, S),
        "redispatch": ("dispatched", False, D),
        "park": ("parked", False, D),
    }
    if state == "dispatched":
        moves["accept"] = ("in_progress", pending, S)
    else:
        moves["resolve"] = ("resolved", False, S)
    if pending:
        moves["approve_extension"] = (state, False, D)
        moves["reject_extension"] = (state, False, D)
    else:
        moves["request_extension"] = (state, True, S)
    return moves


SPEC: dict[tuple[str, bool], dict[str, tuple[str, bool, str]]] = {
    ("reported", False): {
        "register": ("registered", False, D),
        "cancel": ("cancelled", False, D),
        "self_close": ("closed", False, V),  # 自行处置: the reporting inspector, on the spot
    },
    ("registered", False): {
        "dispatch": ("dispatched", False, D),
        "cancel": ("cancelled", False, D),
        "park": ("parked", False, D),
    },
    ("dispatched", False): _holding("dispatched", False),
    ("dispatched", True): _holding("dispatched", True),
    ("in_progress", False): _holding("in_progress", False),
    ("in_progress", True): _holding("in_progress", True),
    ("resolved", False): {"verify": ("verified", False, V), "rework": ("dispatched", False, V)},
    ("verified", False): {"close": ("closed", False, D)},
}
END = {"closed", "cancelled", "parked"}
ALL_ACTIONS = sorted({a for moves in SPEC.values() for a in moves})
START = ("reported", False)
POINT = (114.04, 22.535)  # inspector 101's quarter of the test city


def paths_with_one_loop_at_most() -> list[list[str]]:
    """Every action sequence from a report to an end state entering at most one node twice."""
    found: list[list[str]] = []

    def walk(node: tuple[str, bool], seen: dict, loops: int, path: list[str]) -> None:
        if node[0] in END:
            found.append(path)
            return
        for action, (state, pending, _) in SPEC[node].items():
            nxt = (state, pending)
            again = loops + (1 if nxt in seen else 0)
            if again <= 1:
                walk(nxt, {**seen, nxt: True}, again, [*path, action])

    walk(START, {START: True}, 0, [])
    return found


def payload(action: str, city: City) -> dict[str, Any]:
    """The fields an action needs."""
    extra: dict[str, Any] = {"note": f"{action} by test"}
    if action == "redispatch":
        extra["department_id"] = city.department_id("cgj")
    if action == "request_extension":
        extra["hours"] = 4
    return {"action": action, **extra}


@pytest.fixture(scope="module")
def keys(city: City) -> dict[str, dict[str, str]]:
    """One key per role; the inspector key speaks for the inspector of ``POINT`` and reports
    the cases (so that it may also close them on the spot)."""
    return {
        D: city.key(D),
        S: city.key(S),
        V: city.key(V, 101),
        "admin": city.key("admin"),
        "app": city.key("app"),
    }


def report(city: City, keys: dict) -> dict[str, Any]:
    body = {"category": "0104", "description": "dirty road", "lon": POINT[0], "lat": POINT[1]}
    r = city.client.post(
        "/incidents",
        json={**body, "photos": ["https://photos.example/dirty-road.jpg"]},
        headers=keys[V],
    )
    assert r.status_code == 201, r.text
    return r.json()


def act(city: City, case: dict, action: str, key: dict) -> Any:
    return city.client.post(
        f"/incidents/{case['id']}/transitions",
        json=payload(action, city),
        headers={**key, "If-Match": f'"{case["version"]}"'},
    )


def history(city: City, case_id: int) -> list[tuple]:
    with psycopg.connect(city.url) as conn:
        return conn.execute(
            "SELECT action, from_status, to_status, actor, note FROM incident_transitions "
            "WHERE incident_id = %s ORDER BY id",
            (case_id,),
        ).fetchall()


PATHS = paths_with_one_loop_at_most()


def test_spec_paths_cover_every_move() -> None:
    moves = {(node, a) for node, actions in SPEC.items() for a in actions}
    walked = set()
    for path in PATHS:
        node = START
        for action in path:
            walked.add((node, action))
            node = SPEC[node][action][:2]
    assert walked == moves and len(PATHS) > 50


@pytest.mark.parametrize("path", PATHS, ids=["-".join(p) for p in PATHS])
def test_legal_path(city: City, keys: dict, path: list[str]) -> None:
    case = report(city, keys)
    node = START
    expected = [("report", None, "reported")]
    for action in path:
        state, pending, role = SPEC[node][action]
        r = act(city, case, action, keys[role])
        assert r.status_code == 200, (action, r.text)
        after = r.json()
        assert after["status"] == state
        assert after["version"] == case["version"] + 1
        assert r.headers["etag"] == f'"{after["version"]}"'
        if action == "rework":
            assert after["rework_count"] == case["rework_count"] + 1
        if action == "approve_extension":
            assert after["deadline"] > case["deadline"]
        else:
            assert after["deadline"] == case["deadline"]
        expected.append((action, node[0], state))
        case, node = after, (state, pending)
    steps = history(city, case["id"])
    assert [s[:3] for s in steps] == expected
    assert all(s[3] for s in steps)
    assert [s[4] for s in steps[1:]] == [f"{a} by test" for a in path]


def way_to(target: tuple[str, bool]) -> list[str]:
    """The shortest action sequence from a report to ``target`` in SPEC."""
    queue: deque = deque([(START, [])])
    seen = {START}
    while queue:
        node, path = queue.popleft()
        if node == target:
            return path
        for action, (state, pending, _) in SPEC.get(node, {}).items():
            if (state, pending) not in seen:
                seen.add((state, pending))
                queue.append(((state, pending), [*path, action]))
    raise AssertionError(f"{target} is unreachable")


NODES = [*SPEC, *((s, False) for s in sorted(END))]


@pytest.mark.parametrize("node", NODES, ids=[f"{s}{'+pending' if p else ''}" for s, p in NODES])
def test_every_other_action_is_refused(city: City, keys: dict, node: tuple[str, bool]) -> None:
    case = report(city, keys)
    for action in way_to(node):
        r = act(city, case, action, keys[SPEC[(case["status"], _pending(city, case))][action][2]])
        assert r.status_code == 200, r.text
        case = r.json()
    legal = SPEC.get(node, {})
    before = history(city, case["id"])
    for action in ALL_ACTIONS:
        if action in legal:
            continue
        r = act(city, case, action, keys["admin"])
        assert r.status_code == 409, (action, r.text)
        body = r.json()
        assert body["code"] == "illegal_transition"
        assert sorted(body["details"]["allowed"]) == sorted(legal)
    for action, (_, _, role) in legal.items():
        for other in (D, S, V, "app"):
            if other != role:
                r = act(city, case, action, keys[other])
                assert r.status_code == 403, (action, other, r.text)
    now = city.client.get(f"/incidents/{case['id']}", headers=keys["app"]).json()
    assert (now["status"], now["version"]) == (case["status"], case["version"])
    assert history(city, case["id"]) == before


def _pending(city: City, case: dict) -> bool:
    with psycopg.connect(city.url) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM incident_extensions "
                "WHERE incident_id = %s AND status = 'pending'",
                (case["id"],),
            ).fetchone()[0]
        )
