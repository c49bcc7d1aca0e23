"""Who receives patrol events on /events: dispatchers, admin and the inspector concerned."""

from __future__ import annotations

import pytest

from layers.incidents.events import Event
from spatial_api.auth import Principal
from spatial_api.routers.events import may_see

OFF_POST = Event(7, "inspector.off_post", '{"type": "inspector.off_post", "inspector_id": 101}')
CASE = Event(8, "incident.created", '{"type": "incident.created", "inspector_id": 101}')


@pytest.mark.parametrize(
    ("caller", "sees"),
    [
        (Principal("app"), False),
        (Principal("editor"), False),
        (Principal("inspector", inspector_id=102), False),
        (Principal("inspector"), False),
        (Principal("inspector", inspector_id=101), True),
        (Principal("dispatcher"), True),
        (Principal("admin"), True),
    ],
)
def test_patrol_events_reach_only_who_may_know_where_an_inspector_is(
    caller: Principal, sees: bool
) -> None:
    assert may_see(caller, OFF_POST) is sees
    assert may_see(caller, CASE) is True
