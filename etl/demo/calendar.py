"""When the demo city's incidents are reported: weekly, daily and seasonal rhythms.

Rubbish, flyers and building sites are reported in working hours on working days; street
vendors and barbecues in the evening and at weekends; emergencies round the clock, with
floods in the rainy season. Reports grow slowly over the year as the system catches on.
"""

from __future__ import annotations

import numpy as np

from etl.demo.city import DAY_S, END_S

# Monday .. Sunday
WEEKDAY = {"01": (1, 1, 1, 1, 1, 0.8, 0.7), "02": (1.1, 1, 1, 1, 1, 0.7, 0.6),
           "03": (1, 1, 1, 1, 1, 0.9, 0.5), "05": (0.8, 0.8, 0.9, 0.9, 1.1, 1.4, 1.3)}  # fmt: skip
DAYTIME = (0, 0, 0, 0, 0, 1, 2, 4, 7, 9, 9, 8, 5, 6, 8, 9, 8, 6, 4, 3, 2, 1, 1, 0)
EVENING = (2, 1, 1, 0, 0, 0, 0, 1, 1, 2, 3, 4, 4, 3, 3, 3, 4, 6, 8, 9, 9, 8, 6, 4)
ROUND_CLOCK = (2, 2, 2, 2, 2, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 3, 3, 2)
HOURS = {"01": DAYTIME, "02": DAYTIME, "03": DAYTIME, "04": ROUND_CLOCK, "05": EVENING,
         "06": ROUND_CLOCK}  # fmt: skip
RAINY_MONTHS = (5, 6, 7, 8, 9)


def _day_weights(days_since_epoch: np.ndarray, major: str) -> np.ndarray:
    """Weights of the year's days for a major class: weekday rhythm, rain, slow growth."""
    weekday = np.array(WEEKDAY.get(major, (1,) * 7))[(days_since_epoch + 3) % 7]
    months = (days_since_epoch.astype("datetime64[D]").astype("datetime64[M]").astype(int) % 12) + 1
    rain = np.where(np.isin(months, RAINY_MONTHS), 2.5, 1.0) if major == "04" else 1.0
    growth = np.linspace(0.85, 1.15, len(days_since_epoch))
    return weekday * rain * growth


def report_times(rng: np.random.Generator, major: np.ndarray) -> np.ndarray:
    """When each case of the given major classes was reported (Unix seconds): a day of the
    year before ``END`` by its class's day weights, an hour by its class's daily rhythm."""
    first_day_s = END_S - 365 * DAY_S
    local_days = (first_day_s + 8 * 3600) // DAY_S + np.arange(365)
    out = np.empty(len(major), dtype=np.int64)
    for m in sorted(set(major.tolist())):
        idx = np.flatnonzero(major == m)
        w = _day_weights(local_days, m)
        day = rng.choice(365, len(idx), p=w / w.sum())
        h = np.array(HOURS[m], dtype=float)
        hour = rng.choice(24, len(idx), p=h / h.sum())
        out[idx] = first_day_s + day * DAY_S + hour * 3600 + rng.integers(0, 3600, len(idx))
    return out
