"""Install time of w2v2cli on a fresh virtual environment, two revisions side by side.

For each run: a new venv, PyTorch installed first and not timed (the same wheel for every
revision: ``torch==2.13.0``), then ``pip install --no-cache-dir -e CLONE[EXTRAS]`` timed, so
every wheel is downloaded and every source package compiled as on a fresh machine (nothing
from pip's cache). Revisions are checked out into clones under ``benchmarks/_data/install/``;
rounds alternate the order (A B, B A, ...) because the machine is shared. Reported per run:
seconds, the numpy that was resolved, which beam-search engine packages came in, and
``pip check``.

Usage::

    python benchmarks/bench_install.py --before 6a9b298 --after HEAD --rounds 2 --write
    python benchmarks/bench_install.py --before 6a9b298 --after HEAD --extras "[test,openvino]"
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "_data" / "install"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def sh(*args: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def clone(rev: str) -> tuple[Path, str]:
    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", rev).stdout.strip()
    dest = DATA / f"src-{commit}"
    if not dest.is_dir():
        sh("git", "clone", "-q", str(ROOT), str(dest))
        sh("git", "-C", str(dest), "checkout", "-q", commit)
    return dest, commit


def one_run(src: Path, extras: str, torch_spec: str) -> dict[str, str | float]:
    venv = DATA / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    sh(sys.executable, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    sh(*pip, "install", "-q", "--no-cache-dir", torch_spec)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(
        [*pip, "install", "-q", "--no-cache-dir", "-e", f"{src}{extras}"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"install of {src}{extras} failed:\n{proc.stderr[-3000:]}")
    listed = sh(*pip, "list", "--format=freeze").stdout.splitlines()
    versions = dict(line.split("==", 1) for line in listed if "==" in line)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True).stdout.strip()
    engines = [
        f"{name} {versions[name]}"
        for name in ("ctc-beam-decoder", "pyctcdecode", "kenlm")
        if name in versions
    ]
    return {
        "seconds": seconds,
        "numpy": versions.get("numpy", "?"),
        "engines": ", ".join(engines),
        "check": check.splitlines()[-1] if check else "",
        "load": load,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="git revision measured first (A)")
    p.add_argument("--after", default="HEAD", help="git revision B")
    p.add_argument("--extras", default="", help='e.g. "[test,openvino]" (default: none)')
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--torch", default="torch==2.13.0", help="installed first, not timed")
    p.add_argument("--write", action="store_true", help="write the report into RESULTS.md")
    args = p.parse_args()

    DATA.mkdir(parents=True, exist_ok=True)
    revisions = [clone(args.before), clone(args.after)]
    runs: dict[str, list[dict]] = {commit: [] for _, commit in revisions}  # type: ignore[type-arg]
    for r in range(args.rounds):
        for src, commit in revisions if r % 2 == 0 else revisions[::-1]:
            result = one_run(src, args.extras, args.torch)
            runs[commit].append(result)
            print(
                f"round {r + 1}: {commit}{args.extras}: {result['seconds']:.1f} s "
                f"(load {result['load']:.1f})",
                file=sys.stderr,
                flush=True,
            )
    shutil.rmtree(DATA / "venv", ignore_errors=True)

    flags = sorted(
        {
            f
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
            for f in line.split(":", 1)[1].split()
            if f == "avx2" or f.startswith(("avx512", "amx")) or f == "avx_vnni"
        }
    )
    pip_version = sh(sys.executable, "-m", "pip", "--version").stdout.split()[1]
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} cores, CPU flags: {' '.join(flags) or 'none'}; "
        f"Python {sys.version.split()[0]}, pip {pip_version}; downloads from PyPI",
        f"- command: `python benchmarks/bench_install.py {' '.join(sys.argv[1:])}`",
        f"- timed: `pip install --no-cache-dir -e CLONE{args.extras}` into a new venv that "
        f"already has `{args.torch}`; load = the 1-minute load average at the start (this "
        "machine is shared)",
        "",
        "| revision | seconds per run (load) | median | numpy | engine packages | pip check |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for _, commit in revisions:
        rs = runs[commit]
        per_run = ", ".join(f"{r['seconds']:.0f} ({r['load']:.1f})" for r in rs)
        median = statistics.median(r["seconds"] for r in rs)
        lines.append(
            f"| {commit} | {per_run} | {median:.0f} | {rs[-1]['numpy']} | "
            f"{rs[-1]['engines']} | {rs[-1]['check']} |"
        )
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_transcribe import write_section

        section = f"install time: {revisions[0][1]} vs {revisions[1][1]}{args.extras}"
        write_section(RESULTS, section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
