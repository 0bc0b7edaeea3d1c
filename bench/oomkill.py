"""Whether the kernel's out-of-memory killer ended a process: its memory cgroup's counters and the kernel log.

A process the OOM killer ends dies by SIGKILL, which alone does not tell it from any other SIGKILL. The
kernel says so in two places: the ``oom_kill`` count of the memory cgroup the process ran in (cgroup v2's
``memory.events``, v1's ``memory.oom_control``; v1's ``memory.failcnt`` counts the times the cgroup hit its
limit), and a line ``Killed process PID (name) ...`` in its log (``/dev/kmsg``, readable by root or where
``kernel.dmesg_restrict`` is 0). Where neither can be read, nothing is claimed.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/memory"))
"""Where a cgroup's path of /proc/PID/cgroup is found: v2 (alone, or beside v1 as ``unified``), then v1's
memory hierarchy."""


def memory_cgroup(pid: int | str = "self") -> Path | None:
    """The folder of ``pid``'s memory cgroup (v1 or v2) whose counters can be read, or None."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        v1 = "memory" in controllers.split(",")
        if not (v1 or (hierarchy == "0" and not controllers)):
            continue
        counter = "memory.oom_control" if v1 else "memory.events"
        for root in CGROUP_ROOTS[2:] if v1 else CGROUP_ROOTS[:2]:
            folder = root / path.lstrip("/")
            if (folder / counter).is_file():
                return folder
    return None


def counters(cgroup: Path | None) -> dict[str, int]:
    """The cgroup's ``oom_kill`` count (v1 and v2) and ``failcnt`` (v1); empty where unreadable."""
    found: dict[str, int] = {}
    if cgroup is None:
        return found
    for name in ("memory.events", "memory.oom_control"):
        try:
            for line in (cgroup / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    found["oom_kill"] = int(value)
        except OSError:
            pass
    with contextlib.suppress(OSError, ValueError):
        found["failcnt"] = int((cgroup / "memory.failcnt").read_text())
    return found


def kernel_log_kill(pid: int) -> str | None:
    """The kernel log's record of the OOM killer killing ``pid``, or None (none, or the log is unreadable)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found = None
    try:
        while True:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: records overwritten while reading; go on with the next
                continue
            message = record.split(";", 1)[-1].strip()
            if f"Killed process {pid} (" in message:
                found = message.splitlines()[0]
    finally:
        os.close(fd)
    return found


def evidence(pid: int, cgroup: Path | None, before: dict[str, int], wait_s: float = 0.5) -> str | None:
    """What says that the OOM killer killed ``pid`` (which died by SIGKILL), given the cgroup's
    :func:`counters` from before it ran, or None. The kernel log is read again for up to ``wait_s``
    seconds, as its record may lag the kill."""
    deadline = time.monotonic() + wait_s
    while True:
        after = counters(cgroup)
        rose = [
            f"{name} {before[name]} -> {after[name]}" for name in after if after[name] > before.get(name, after[name])
        ]
        logged = kernel_log_kill(pid)
        if logged or "oom_kill" in " ".join(rose) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    parts = [f"memory cgroup {cgroup}: {', '.join(rose)}"] if rose else []
    if logged:
        parts.append(f"kernel log: {logged}")
    return "; ".join(parts) or None
