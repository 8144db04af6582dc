"""Which process this is, and whether another one is still running.

A process is named by its pid, its start time and its host. The start time (Linux: the boot id and
the start tick from /proc) makes a pid that the system gave to a new process after the old one died
a different process, so pid reuse cannot make a dead andon look alive.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: str  # "" where the system does not tell
    host: str


def this_process() -> ProcessId:
    return ProcessId(os.getpid(), start_time(os.getpid()), socket.gethostname())


def start_time(pid: int) -> str:
    """`boot-id:start-tick` from /proc on Linux, "" elsewhere or when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else ""


def is_alive(process: ProcessId) -> bool:
    """False only when this host can tell that the process has ended.

    A process on another host, or on a system that cannot be asked without side effects (Windows,
    where os.kill terminates), counts as alive: andon never takes over what may still be written.
    """
    if process.host != socket.gethostname() or os.name != "posix":
        return True
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    if not process.started:
        return True
    return start_time(process.pid) == process.started
