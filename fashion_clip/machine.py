"""What the machine gives this process: the CPU cores it may run on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (taskset, cpusets; a CPU quota is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: every core, as far as we can tell
        return os.cpu_count() or 1
