"""Which process this is, in a form another process on the same machine can check for life.

A process is named by its host name, the kernel's boot id, its pid and its start time (in
clock ticks since boot, from /proc): a pid alone is reused, a start time alone repeats across
boots and containers. `alive` answers for a process of this machine only; for any other it
returns None (unknown).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessId:
    host: str
    boot_id: str
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat, field 22)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    return int(stat.rpartition(")")[2].split()[19])


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(socket.gethostname(), _boot_id(), pid, _start_ticks(pid) or 0)


def alive(process: ProcessId) -> bool | None:
    """True or False for a process of this machine (same host name and boot); None otherwise."""
    here = this_process()
    if not here.boot_id or (process.host, process.boot_id) != (here.host, here.boot_id):
        return None
    return _start_ticks(process.pid) == process.start
