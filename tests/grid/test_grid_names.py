"""Who answers for a cell, as each role reads it: /grid/lookup and /grid/cells/{cell} name the
inspector and the district's supervisor to inspector, editor, dispatcher and admin keys, and
give app keys (programs, not colleagues) their ids only; nobody gets a phone number."""

from __future__ import annotations

from collections.abc import Iterator

import h3
import pytest
import shapely

from layers.grid.build import build_from
from tests.helpers import GridCity

POINT = {"lon": 114.01, "lat": 22.55}
NAMED = ("inspector", "editor", "dispatcher", "admin")


@pytest.fixture(scope="module")
def city(grid_city) -> Iterator[GridCity]:
    """One district with its supervisor, a grid at res 9, every cell with one inspector."""
    with grid_city("cityhex_grid_names") as c:
        district = c.add_district("440304", "Futian", shapely.box(113.9, 22.4, 114.2, 22.7))
        (c.supervisor,) = c.add_users(1, "supervisor", district)
        (c.inspector,) = c.add_users(1)
        build_from(c.url, shapely.box(114.0, 22.54, 114.02, 22.56), 9, "test")
        c.execute("UPDATE grid_cells SET inspector_id = %s, supervisor = '440304'", (c.inspector,))
        yield c


def people(city: GridCity) -> dict[int, tuple[str, str]]:
    """Every user's name and phone number, from the table."""
    return {i: (n, p) for i, n, p in city.rows("SELECT id, name, phone FROM users")}


def answers(city: GridCity, role: str) -> tuple[dict, dict]:
    """The lookup at POINT and the feature of its cell, as ``role`` reads them."""
    key = city.key(role)
    found = city.client.get("/grid/lookup", params=POINT, headers=key)
    assert found.status_code == 200, found.text
    cell = h3.latlng_to_cell(POINT["lat"], POINT["lon"], 9)
    feature = city.client.get(f"/grid/cells/{cell}", headers=key)
    assert feature.status_code == 200, feature.text
    return found.json(), feature.json()["properties"]


def test_app_keys_get_ids_and_no_names(city: GridCity) -> None:
    found, feature = answers(city, "app")
    assert found["inspector"] == {"id": city.inspector}
    assert found["supervisor"]["supervisor"] == {"id": city.supervisor}
    assert found["supervisor"]["name"] == "Futian"  # the district's name, not a person's
    assert feature["inspector"] == {"id": city.inspector}
    text = str(found) + str(feature)
    for name, phone in people(city).values():
        assert name not in text and phone not in text


@pytest.mark.parametrize("role", NAMED)
def test_colleagues_get_names_and_no_phone_numbers(city: GridCity, role: str) -> None:
    found, feature = answers(city, role)
    staff = people(city)
    assert found["inspector"] == {"id": city.inspector, "name": staff[city.inspector][0]}
    assert found["supervisor"]["supervisor"] == {
        "id": city.supervisor,
        "name": staff[city.supervisor][0],
    }
    assert feature["inspector"] == {"id": city.inspector, "name": staff[city.inspector][0]}
    text = str(found) + str(feature)
    assert all(phone not in text for _, phone in staff.values())
