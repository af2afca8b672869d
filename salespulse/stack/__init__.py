"""The local stack (Kafka KRaft, Redis, Prometheus, Alertmanager) without Docker.

>>> from salespulse.config import Settings
>>> from salespulse import stack
>>> sorted(stack.status(Settings(home="/nonexistent-home")))
['alertmanager', 'kafka', 'prometheus', 'redis']
"""

from __future__ import annotations

from salespulse.stack.process import StackError
from salespulse.stack.topics import default_topics, ensure_topics
from salespulse.stack.up import (
    DEFAULT_SERVICES,
    SERVICES,
    down,
    reset,
    start_node,
    status,
    stop_node,
    up,
)

__all__ = [
    "DEFAULT_SERVICES",
    "SERVICES",
    "StackError",
    "default_topics",
    "down",
    "ensure_topics",
    "reset",
    "start_node",
    "status",
    "stop_node",
    "up",
]
