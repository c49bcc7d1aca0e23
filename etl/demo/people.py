"""The demo city's people: inspectors (网格员), supervisors, dispatchers and department staff.

Names and phone numbers are synthetic; the phone numbers are personal data all the same, so
the open-data layer must never show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余杜叶程魏苏吕丁"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚华玲辉鹏斌宇浩"
    "凯婷雪琳晨欣悦涵思雨嘉博文俊佳怡航建志红海波宁丹晓东亮峰飞"
)
MOBILE_PREFIXES = ("135", "136", "137", "138", "139", "150", "158", "186", "188", "189")
STAFF_PER_DEPARTMENT = 3
CITY_DISPATCHERS = 2
GRID_DEPARTMENT = "cgj"


@dataclass(frozen=True)
class People:
    """The ``users`` rows and the user ids of each job.

    ``inspector`` is indexed by territory, ``supervisor`` and ``dispatcher`` by district
    index, ``staff`` maps a department id to its staff.
    """

    rows: dict[str, Any]
    inspector: np.ndarray
    supervisor: np.ndarray
    dispatcher: np.ndarray
    staff: dict[int, np.ndarray]


def synthetic_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` plausible Chinese personal names (a surname and one or two given characters)."""
    surname = rng.integers(0, len(SURNAMES), n)
    first = rng.integers(0, len(GIVEN), n)
    second = rng.integers(-len(GIVEN) // 2, len(GIVEN), n)
    return [
        SURNAMES[s] + GIVEN[f] + (GIVEN[g] if g >= 0 else "")
        for s, f, g in zip(surname.tolist(), first.tolist(), second.tolist(), strict=True)
    ]


def fake_phones(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` made-up 11-digit mobile numbers."""
    prefix = rng.integers(0, len(MOBILE_PREFIXES), n)
    number = rng.integers(0, 100_000_000, n)
    pairs = zip(prefix.tolist(), number.tolist(), strict=True)
    return [f"{MOBILE_PREFIXES[p]}{x:08d}" for p, x in pairs]


def build_people(
    rng: np.random.Generator,
    block_district: np.ndarray,
    district_ids: np.ndarray,
    departments: dict[str, int],
    first_id: int,
) -> People:
    """Every user: one inspector per territory, a supervisor and a dispatcher per district,
    two city dispatchers, and staff for every department."""
    grid_dept = departments[GRID_DEPARTMENT]
    dept_ids = sorted(departments.values())
    role: list[str] = []
    department: list[int] = []
    district: list[int | None] = []

    def add(job: str, dept: int, where: list[int | None]) -> np.ndarray:
        start = first_id + len(role)
        role.extend([job] * len(where))
        department.extend([dept] * len(where))
        district.extend(where)
        return np.arange(start, start + len(where), dtype=np.int64)

    per_district = [int(d) for d in district_ids.tolist()]
    inspector = add("inspector", grid_dept, [per_district[d] for d in block_district.tolist()])
    supervisor = add("supervisor", grid_dept, list(per_district))
    dispatcher = add("dispatcher", grid_dept, list(per_district))
    add("dispatcher", grid_dept, [None] * CITY_DISPATCHERS)
    staff = {d: add("staff", d, [None] * STAFF_PER_DEPARTMENT) for d in dept_ids}
    n = len(role)
    rows = {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "name": synthetic_names(rng, n),
        "role": role,
        "department_id": department,
        "district_id": district,
        "phone": fake_phones(rng, n),
    }
    return People(rows, inspector, supervisor, dispatcher, staff)
