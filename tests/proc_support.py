"""Process helpers shared by the tests that start servers (API, Dagster, dashboard)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
from pathlib import Path

__all__ = ["die_with_parent", "free_port", "group_members"]


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:  # runs in the child between fork and exec
    """``preexec_fn``: the child gets SIGKILL when the test process dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) members of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 2 and rest[0] != "Z" and int(rest[2]) == pgid:
            members.append(int(entry.name))
    return members
