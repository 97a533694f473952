"""How many cores this process may use: for the model's threads and the worker processes.

``os.cpu_count()`` counts the machine's cores; a process may be limited to fewer by its CPU
affinity (``taskset``, Slurm's binding) or by a cgroup CPU quota (Docker ``--cpus``,
Kubernetes limits). Oversubscribing a quota makes inference slower, not faster, so the
default is the smallest of the three. ``--threads`` overrides it for the model,
``--decode-workers`` for the worker processes (``pipeline/workers.py``, ``decoding/beam.py``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores() -> int:
    """Cores this process may use: affinity, cgroup quota and ``os.cpu_count()`` combined."""
    counts = [os.cpu_count() or 1]
    if hasattr(os, "sched_getaffinity"):
        counts.append(len(os.sched_getaffinity(0)))
    quota = _cgroup_quota()
    if quota is not None:
        counts.append(max(1, math.ceil(quota)))
    return max(1, min(counts))


def resolve_threads(threads: int | None) -> int:
    """``--threads`` if given, else ``available_cores()``."""
    return int(threads) if threads else available_cores()
