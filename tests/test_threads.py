"""Threads default to the cores the process may use: affinity and cgroup quotas."""

from __future__ import annotations

import os
from pathlib import Path

from w2v2cli import cores as threads


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads._cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_quota(tmp_path) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_quota(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads._cgroup_quota(tmp_path) is None


def test_affinity_limits_the_default(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert threads.available_cores() == 1
    assert threads.resolve_threads(None) == 1
    assert threads.resolve_threads(3) == 3


def test_quota_limits_the_default(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda root=None: 2.5)
    assert threads.available_cores() == 3


def test_threads_reach_both_backends(group_model) -> None:
    import torch

    from w2v2cli import Transcriber
    from w2v2cli.options import ModelOptions, RunOptions

    before = torch.get_num_threads()
    try:
        for backend in ("torch", "openvino"):
            t = Transcriber(
                RunOptions(model=ModelOptions(str(group_model), backend=backend, threads=1))
            )
            assert t.runner.backend.threads == 1
    finally:
        torch.set_num_threads(before)
