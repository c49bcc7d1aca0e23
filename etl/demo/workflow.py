"""Case histories for the demo incidents: every step of each case's lifecycle, in numpy.

A case follows one path (straight through, reworked once or twice, cancelled, parked);
the time between steps scales with its category's time limit, so most cases close within
the limit and some do not. A few recent cases stall on the way, and everything after the
demo's "now" has not happened yet: together these leave cases in every state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.copytext.fields import NO_TIME

# The action names and states of layers.incidents.workflow.
ACTIONS = ("report", "register", "dispatch", "accept", "resolve", "verify", "close", "rework",
           "cancel", "park")  # fmt: skip
TO_STATUS = ("reported", "registered", "dispatched", "in_progress", "resolved", "verified",
             "closed", "dispatched", "cancelled", "parked")  # fmt: skip
NOTES = ("上报", "立案", "派遣", "受理", "处置完成", "核查通过", "结案", "核查未通过，返工",
         "作废：重复或无效上报", "挂账：暂无法解决")  # fmt: skip
# who acts: 0 the reporter, 1 the dispatcher, 2 the department's staff, 3 the inspector
ACTOR_OF_ACTION = np.array([0, 1, 1, 2, 2, 3, 1, 3, 1, 1])
REPORT, REGISTER, DISPATCH, ACCEPT, RESOLVE, VERIFY, CLOSE, REWORK, CANCEL, PARK = range(10)

PATHS = (
    (0.875, (REPORT, REGISTER, DISPATCH, ACCEPT, RESOLVE, VERIFY, CLOSE)),
    (0.070, (REPORT, REGISTER, DISPATCH, ACCEPT, RESOLVE, REWORK, ACCEPT, RESOLVE, VERIFY, CLOSE)),
    (0.015, (REPORT, REGISTER, DISPATCH, ACCEPT, RESOLVE, REWORK, ACCEPT, RESOLVE, REWORK, ACCEPT,
             RESOLVE, VERIFY, CLOSE)),
    (0.015, (REPORT, CANCEL)),
    (0.010, (REPORT, REGISTER, CANCEL)),
    (0.008, (REPORT, REGISTER, DISPATCH, PARK)),
    (0.007, (REPORT, REGISTER, DISPATCH, ACCEPT, PARK)),
)  # fmt: skip
STALL_SHARE = 0.08
STALL_WINDOW_S = 30 * 86_400
STALL_LENGTHS = (1, 2, 3, 4, 5, 6)  # steps kept: reported .. verified
HOUR_S = 3600.0


@dataclass(frozen=True)
class Lifecycles:
    """Each case's steps (action codes, -1 padding) and their times, and how many happened."""

    action: np.ndarray
    at: np.ndarray
    length: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        """Which steps happened (by the demo's "now")."""
        return np.arange(self.action.shape[1])[None, :] < self.length[:, None]


def _path_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paths as a padded action matrix, their lengths and their shares."""
    width = max(len(p) for _, p in PATHS)
    table = np.full((len(PATHS), width), -1, dtype=np.int64)
    for i, (_, path) in enumerate(PATHS):
        table[i, : len(path)] = path
    shares = np.array([s for s, _ in PATHS])
    return table, np.array([len(p) for _, p in PATHS]), shares / shares.sum()


def _gaps(rng: np.random.Generator, limit_h: np.ndarray) -> np.ndarray:
    """Seconds each action takes after the previous step, per case (n x actions).

    The handling steps share a total of the time limit times a lognormal factor (median
    0.55): about one case in nine runs over its limit before any rework.
    """
    n = len(limit_h)
    total = limit_h * HOUR_S * rng.lognormal(np.log(0.55), 0.5, n)
    stage = rng.dirichlet([2.0, 3.0, 8.0, 3.0, 2.0], n) * total[:, None]
    gaps = np.zeros((n, len(ACTIONS)))
    gaps[:, REGISTER] = rng.exponential(0.3 * HOUR_S, n)
    gaps[:, [DISPATCH, ACCEPT, RESOLVE, VERIFY, CLOSE]] = stage
    gaps[:, REWORK] = stage[:, 3]
    gaps[:, CANCEL] = rng.exponential(1.0 * HOUR_S, n)
    gaps[:, PARK] = rng.uniform(48 * HOUR_S, 240 * HOUR_S, n)
    return gaps


def lifecycles(
    rng: np.random.Generator, reported_at: np.ndarray, limit_h: np.ndarray, end_s: int
) -> Lifecycles:
    """The history of every case reported at ``reported_at`` (Unix seconds), up to ``end_s``."""
    table, lengths, shares = _path_table()
    path = rng.choice(len(PATHS), len(reported_at), p=shares)
    action = table[path]
    gaps = np.take_along_axis(_gaps(rng, limit_h), np.maximum(action, 0), axis=1)
    gaps[:, 0] = 0.0
    gaps[action < 0] = 0.0
    at = reported_at[:, None] + np.floor(np.cumsum(gaps, axis=1)).astype(np.int64)
    length = lengths[path].copy()
    stalled = np.flatnonzero(
        (path == 0)
        & (reported_at >= end_s - STALL_WINDOW_S)
        & (rng.random(len(path)) < STALL_SHARE)
    )
    length[stalled] = np.array(STALL_LENGTHS)[np.arange(len(stalled)) % len(STALL_LENGTHS)]
    happened = ((at < end_s) & (action >= 0)).sum(axis=1)
    return Lifecycles(action, at, np.minimum(length, happened))


def _first(mask: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The earliest time where ``mask`` holds, per case (``NO_TIME`` when never)."""
    big = np.iinfo(np.int64).max
    first = np.where(mask, at, big).min(axis=1)
    return np.where(first == big, NO_TIME, first)


def _last(mask: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The latest time where ``mask`` holds, per case (``NO_TIME`` when never)."""
    return np.where(mask, at, NO_TIME).max(axis=1)


def case_summary(lc: Lifecycles) -> dict[str, np.ndarray]:
    """Each case's status, milestone times, rework count and last change, from its steps."""
    kept = lc.kept
    rows = np.arange(len(lc.length))
    last_action = lc.action[rows, lc.length - 1]
    status = np.array(TO_STATUS, dtype=object)[last_action]
    done = np.isin(last_action, (RESOLVE, VERIFY, CLOSE))
    resolved_at = _last(kept & (lc.action == RESOLVE), lc.at)
    return {
        "status": status,
        "registered_at": _first(kept & (lc.action == REGISTER), lc.at),
        "dispatched_at": _first(kept & (lc.action == DISPATCH), lc.at),
        "resolved_at": np.where(done, resolved_at, NO_TIME),
        "closed_at": _first(kept & (lc.action == CLOSE), lc.at),
        "rework_count": (kept & (lc.action == REWORK)).sum(axis=1),
        "updated_at": lc.at[rows, lc.length - 1],
    }


def step_summary(lc: Lifecycles) -> dict[str, np.ndarray]:
    """Each case's first and last resolve and rework time and how many there are (the
    columns migration 0025's triggers keep from the transitions; written with the cases, so
    the triggers find them right and rewrite no case)."""
    found: dict[str, np.ndarray] = {}
    for name, code in (("resolve", RESOLVE), ("rework", REWORK)):
        mask = lc.kept & (lc.action == code)
        found[f"{name}_first_at"] = _first(mask, lc.at)
        found[f"{name}_last_at"] = _last(mask, lc.at)
        found[f"{name}_n"] = mask.sum(axis=1)
    return found


def transition_steps(lc: Lifecycles) -> dict[str, np.ndarray]:
    """The steps that happened, flattened in case and time order: case index, action code,
    previous action code (-1 for the first step) and time."""
    case, step = np.nonzero(lc.kept)
    action = lc.action[case, step]
    previous = np.where(step > 0, lc.action[case, np.maximum(step - 1, 0)], -1)
    return {"case": case, "action": action, "previous": previous, "at": lc.at[case, step]}
