"""Start a few long-running processes, watch them, and stop them all cleanly.

Used by ``openfuse dev`` (webserver + daemon [+ workers]) and ``openfuse worker``, and by the
tests. Each child starts in a session (and process group) of its own, so

* Ctrl-C in the terminal reaches only this supervisor, which then stops the children in order
  instead of every process getting SIGINT at once;
* a child gets SIGTERM when the supervisor dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so
  a killed ``openfuse dev`` does not leave a webserver behind;
* stopping a child stops what it started too (the webserver's and the daemon's code servers,
  a Celery worker's pool processes): SIGTERM goes to the whole group, and whatever is still
  alive in the group - or among the child's descendants as they were when stopping began, which
  covers those that started sessions of their own - after the grace period gets SIGKILL.

Standard library only: importing this module must stay cheap (the CLI loads it on every start).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

__all__ = ["Child", "Supervisor", "descendants", "group_alive"]


def _processes() -> dict[int, tuple[str, int, int]] | None:
    """pid -> (state, ppid, pgrp) of every process, from /proc; None where there is no /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ... - comm may hold spaces and parentheses.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 2:
            out[int(entry.name)] = (rest[0], int(rest[1]), int(rest[2]))
    return out


def _group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes of a process group; None where there is no /proc."""
    procs = _processes()
    if procs is None:
        return None
    return [pid for pid, (state, _, pgrp) in procs.items() if pgrp == pgid and state != "Z"]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    procs = _processes() or {}
    children: dict[int, list[int]] = {}
    for p, (state, ppid, _) in procs.items():
        if state != "Z":
            children.setdefault(ppid, []).append(p)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _alive(pid: int) -> bool:
    procs = _processes()
    if procs is not None:
        return pid in procs and procs[pid][0] != "Z"
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stopping relies on stop()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    members = _group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Child:
    """One started process (the leader of its own process group)."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Supervisor:
    """Starts children with one environment and stops them all, whatever happens.

    Args:
        env: environment of every child.
        cwd: their working directory.
        say: where progress lines go (default: nowhere).
        grace_seconds: how long a stopping child may take before it is killed.
    """

    env: Mapping[str, str]
    cwd: Path | None = None
    say: Callable[[str], None] = lambda _msg: None
    grace_seconds: float = 15.0
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, name: str, argv: Sequence[str], *, log_path: Path | None = None) -> Child:
        log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv),
            env=dict(self.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
            # prctl only (no locks taken), so safe in a process with threads.
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, list(argv), proc, log)
        self.children.append(child)
        return child

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, grace_seconds: float | None = None) -> None:
        """SIGTERM every child's group (last started first), wait, then SIGKILL what is left."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        tree = {p for c in self.children for p in descendants(c.pid)}
        for c in reversed(self.children):
            if group_alive(c.pid):
                _signal_group(c.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for c in self.children:
            while group_alive(c.pid) and time.monotonic() < deadline:
                if c.proc.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.proc.wait(timeout=0.2)
                else:
                    time.sleep(0.1)
        for c in self.children:
            if group_alive(c.pid):
                self.say(f"{c.name} (pid {c.pid}) did not stop within {grace:.0f}s: killing it")
                _signal_group(c.pid, signal.SIGKILL)
        for p in tree:  # descendants in sessions of their own
            if _alive(p):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
        for c in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=5)
            if c.log is not None:
                c.log.close()
        for c in self.children:  # grandchildren killed with their group may linger as zombies briefly
            end = time.monotonic() + 5
            while group_alive(c.pid) and time.monotonic() < end:
                _signal_group(c.pid, signal.SIGKILL)
                time.sleep(0.05)

    def run(self, poll_seconds: float = 0.5) -> int:
        """Wait until a child exits or SIGINT/SIGTERM arrives; stop everything; return an exit code.

        0 after a signal (a requested stop), else the exit code of the child that ended first
        (1 if it ended with 0: a server is not supposed to end on its own).
        """
        received: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)
            self._stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            while not self._stop.wait(poll_seconds):
                ended = next((c for c in self.children if c.proc.poll() is not None), None)
                if ended is not None:
                    rc = ended.proc.returncode
                    self.say(f"{ended.name} exited with code {rc}; stopping the others")
                    code = rc if rc else 1
                    break
            if received:
                self.say("stopping " + ", ".join(c.name for c in self.children))
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return code
