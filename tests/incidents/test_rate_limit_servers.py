"""The anonymous-report limit holds across servers: two ``cityhex serve`` processes on one
database, a limit of 4 reports a minute, and 10 anonymous reports from one address sent at
once, half to each server. Exactly 4 are taken (one bucket, counted in the database), the
others are refused with 429 and Retry-After; the cases are counted by SQL. Per process, as
before, each server would have taken 4.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import running_server, scalar
from tests.incidents.conftest import build_city

PER_MINUTE = 4
REPORT = {"category": "0102", "description": "rubbish", "lon": 114.04, "lat": 22.535}


@pytest.mark.subprocess
def test_one_limit_across_two_servers(new_database: Callable[..., str]) -> None:
    url = new_database("cityhex_rate_servers")
    build_city(url)
    env = {"CITYHEX_PUBLIC_REPORTS_PER_MINUTE": str(PER_MINUTE)}
    with running_server(url, env=env) as a, running_server(url, env=env) as b:

        def report(base: str) -> httpx.Response:
            return httpx.post(f"{base}/incidents", json=REPORT, timeout=30)

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(report, [a, b] * 5))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * PER_MINUTE + [429] * (10 - PER_MINUTE), codes
        for r in answers:
            if r.status_code == 429:
                assert r.json()["code"] == "too_many_requests"
                # a token comes back every 60 / PER_MINUTE s
                assert 0 < int(r.headers["retry-after"]) <= 60 / PER_MINUTE
        # both servers refuse the next one
        assert report(a).status_code == report(b).status_code == 429
    assert scalar(url, "SELECT count(*) FROM incidents") == PER_MINUTE
    assert scalar(url, "SELECT count(*) FROM rate_buckets") == 1
