"""The case workflow (案件流程) as data: states, actions, who may take them, where they lead.

A case is reported, registered (立案), dispatched (派遣) to a department, taken in hand
(处置), resolved (处置完成), verified on site (核查) and closed (结案). A failed verification
sends it back as rework (返工); a department may hand it back as not theirs (回退) and the
dispatcher dispatches it again; a case can be cancelled (作废) or parked as unsolvable (挂账).
An inspector who fixes what they report on the spot closes it at once (自行处置): straight from
reported to closed, only by the reporting inspector, with a note and a photo.
While a department holds a case it may ask for more time (延期申请), which a dispatcher
approves or rejects; only one request is pending at a time.

Department staff are keys with the ``editor`` role (see ``DEPARTMENT``); ``admin`` may take
every action but the reporter's own (自行处置). Everything here is pure data and pure
functions: no database.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.errors import BadRequest, Conflict, Forbidden

DEPARTMENT = "editor"
"""The key role of department staff (the people who handle a dispatched case)."""

STATES = (
    "reported",
    "registered",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "closed",
    "cancelled",
    "parked",
)
INITIAL = "reported"
CLOCK_STOPPED = frozenset({"closed", "cancelled", "parked"})
"""States in which the deadline no longer runs: a case in any other state is overdue once its
deadline has passed (as the ``overdue`` attribute of the incident tiles has it)."""
OPEN = frozenset(STATES) - {"closed", "cancelled"}
"""States of a case that is still on the books (parked cases stay open: 挂账)."""
REPORT_ROLES = frozenset({"anonymous", "app", "inspector", DEPARTMENT, "dispatcher", "admin"})
SENSOR_ROLES = frozenset({"app", "admin"})
"""The roles that speak for sensors: a report naming a sensor (``source`` sensor) comes from
them (the alarms inside the server report as app)."""
HOLDING = frozenset({"dispatched", "in_progress"})
"""States in which a department holds the case (and may ask for an extension)."""


@dataclass(frozen=True)
class Action:
    """One workflow action: from which states, to which state (None: unchanged), by whom."""

    name: str
    label: str
    sources: frozenset[str]
    target: str | None
    roles: frozenset[str]
    pending_extension: bool | None = None
    """Whether a pending extension request is required (True), forbidden (False) or moot."""
    withdraws_extension: bool = False
    """Whether taking the action withdraws a pending extension request."""
    reporter_only: bool = False
    """Whether only the one who reported the case may take it (not even admin)."""

    def legal_from(self, status: str, pending_extension: bool) -> bool:
        """Whether the action can be taken on a case in ``status``."""
        if status not in self.sources:
            return False
        return self.pending_extension is None or self.pending_extension == pending_extension

    def allows(self, role: str) -> bool:
        """Whether ``role`` may take the action."""
        return (role == "admin" and not self.reporter_only) or role in self.roles

    def next_status(self, status: str) -> str:
        """The status after the action."""
        return self.target or status


def _action(
    name: str, label: str, sources: set[str], target: str | None, role: str, **flags: bool
) -> Action:
    return Action(name, label, frozenset(sources), target, frozenset({role}), **flags)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("register", "立案", {"reported"}, "registered", "dispatcher"),
        _action("dispatch", "派遣", {"registered"}, "dispatched", "dispatcher"),
        _action(
            "redispatch",
            "重新派遣",
            set(HOLDING),
            "dispatched",
            "dispatcher",
            withdraws_extension=True,
        ),
        _action("accept", "受理", {"dispatched"}, "in_progress", DEPARTMENT),
        _action(
            "hand_back", "回退", set(HOLDING), "registered", DEPARTMENT, withdraws_extension=True
        ),
        _action(
            "resolve",
            "处置完成",
            {"in_progress"},
            "resolved",
            DEPARTMENT,
            withdraws_extension=True,
        ),
        _action(
            "request_extension",
            "延期申请",
            set(HOLDING),
            None,
            DEPARTMENT,
            pending_extension=False,
        ),
        _action(
            "approve_extension",
            "批准延期",
            set(HOLDING),
            None,
            "dispatcher",
            pending_extension=True,
        ),
        _action(
            "reject_extension",
            "驳回延期",
            set(HOLDING),
            None,
            "dispatcher",
            pending_extension=True,
        ),
        _action("verify", "核查通过", {"resolved"}, "verified", "inspector"),
        _action("rework", "返工", {"resolved"}, "dispatched", "inspector"),
        _action("close", "结案", {"verified"}, "closed", "dispatcher"),
        _action("self_close", "自行处置", {"reported"}, "closed", "inspector", reporter_only=True),
        _action("cancel", "作废", {"reported", "registered"}, "cancelled", "dispatcher"),
        _action(
            "park",
            "挂账",
            {"registered", *HOLDING},
            "parked",
            "dispatcher",
            withdraws_extension=True,
        ),
    )
}
REPORT = "report"
"""The action recorded when a case is created (from no state to ``INITIAL``)."""


def legal_actions(status: str, pending_extension: bool = False) -> list[str]:
    """The actions that can be taken on a case in ``status``, by anyone."""
    return [a.name for a in ACTIONS.values() if a.legal_from(status, pending_extension)]


def actions_for(status: str, role: str, pending_extension: bool = False) -> list[str]:
    """The actions ``role`` may take on a case in ``status``."""
    return [
        a.name
        for a in ACTIONS.values()
        if a.legal_from(status, pending_extension) and a.allows(role)
    ]


def get_action(name: str) -> Action:
    """The action called ``name``; BadRequest listing the known ones otherwise."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise BadRequest(
            f"unknown action {name!r}; one of {', '.join(ACTIONS)}",
            code="unknown_action",
            details={"actions": list(ACTIONS)},
        ) from None


def check_action(name: str, status: str, role: str, pending_extension: bool) -> Action:
    """The action, if ``role`` may take it on a case in ``status``.

    Conflict (409) when the action does not fit the state, listing the legal ones;
    Forbidden (403) when it fits but belongs to another role.
    """
    action = get_action(name)
    if not action.legal_from(status, pending_extension):
        legal = legal_actions(status, pending_extension)
        raise Conflict(
            f"{name!r} is not allowed on a {status} case{_why(action, status, pending_extension)}"
            f"; allowed: {', '.join(legal) or 'none'}",
            code="illegal_transition",
            details={"status": status, "allowed": legal},
        )
    if not action.allows(role):
        raise Forbidden(
            f"{name!r} is for the {', '.join(sorted(action.roles))} role, not {role!r}",
            code="role_not_allowed",
            details={"roles": sorted(action.roles)},
        )
    return action


def _why(action: Action, status: str, pending_extension: bool) -> str:
    if status not in action.sources:
        return ""
    return (
        " while an extension request is pending"
        if pending_extension
        else (" without a pending extension request")
    )
