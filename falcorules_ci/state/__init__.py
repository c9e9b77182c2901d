"""libsinsp-like state tables for syscall events: threads, fds, users, groups and containers.

:class:`SyscallState` is updated once per event, before rules are evaluated on it, and then
exposes the event's thread (``state.thread``) and fd (``state.fd``) for field extraction.
"""

from __future__ import annotations

from falcorules_ci.state.containers import HOST, ContainerRecord, ContainerTable, match_cgroup
from falcorules_ci.state.fds import FdInfo
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.syscall_state import SyscallState
from falcorules_ci.state.threads import ThreadGroup, ThreadInfo, ThreadTable

__all__ = [
    "HOST",
    "ContainerRecord",
    "ContainerTable",
    "FdInfo",
    "SyscallState",
    "ThreadGroup",
    "ThreadInfo",
    "ThreadTable",
    "concatenate_paths",
    "match_cgroup",
]
