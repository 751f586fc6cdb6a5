"""The kinds of event the tool notifies about: one list for the config (a target's
`events:`) and the notifier. Pure, a leaf."""

from __future__ import annotations

from typing import Literal, get_args

EventKind = Literal[
    "down",
    "recovered",
    "agent_offline",
    "agent_online",
    "failover",
    "backup",
    "warning",
    "drill",
    "maintenance",
    "coordination",
]
EVENTS: tuple[str, ...] = get_args(EventKind)
