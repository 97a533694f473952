#!/usr/bin/env python3
"""The exact versions CI installs, and how they move on.

pyproject.toml bounds what users get (the next major release where one would break us).
CI installs with a pip constraints file per environment, the exact versions the suite last
passed with, so that a CI run is reproducible and a new upstream release cannot turn it red
by itself:

- ``.ci/constraints.txt``: the main environment, what ``pip install '.[openvino,ray,vad,test]'``
  gives (numpy 2, the newest pyarrow, ctc-beam-decoder);
- ``.ci/constraints-pyctcdecode.txt``: the same with the pyctcdecode extra (numpy < 2,
  pyarrow < 22): the second test environment (``.ci/pyctcdecode``) and install.sh's
  fallback.

torch is not in them: install.sh pins it (``TORCH_SPEC``, a CPU build; an unpinned torch pulls
CUDA). Both are resolved by pip for the running interpreter (CI's: Linux x86-64, CPython 3.11).

    python3 .ci/constraints.py refresh   # resolve the newest releases within the bounds and
                                         # write both files; then run `bash .ci/run` and commit
    python3 .ci/constraints.py check     # one line: what is newer than the files (never fails)

Nothing is installed: ``pip install --dry-run --ignore-installed --report`` resolves.

The main environment is the machine's own interpreter, and CI's machine ships packages of
its own there (awscli's botocore requires ``python-dateutil<3``, aws-sam-translator
``pydantic~=2.13.3``): pins that broke them would fail install.sh's ``pip check``. So the
resolution is bounded by the requirements of every package installed beside ours in the
interpreter that runs this script (``image_requirements``): run ``refresh`` on a machine of
CI's kind.
"""

from __future__ import annotations

import datetime
import json
import platform
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / ".ci"
#: file -> the project's extras it is resolved for
ENVIRONMENTS = {
    "constraints.txt": "openvino,ray,vad,test",
    # Every extra, so that install.sh's fallback (openvino, ray, vad on numpy < 2) is pinned
    # too; the second test environment installs a subset (test,pyctcdecode).
    "constraints-pyctcdecode.txt": "openvino,ray,vad,test,pyctcdecode",
}
#: Never written to a constraints file: the project, pip itself, torch (install.sh's).
SKIP = {"w2v2cli", "pip", "torch"}
#: Installed packages whose requirements do not bound the resolution: install.sh removes
#: them from the main environment (pyctcdecode would hold numpy below 2).
REMOVED = {"pyctcdecode", "kenlm"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def torch_spec() -> str:
    """install.sh's default PyTorch requirement, so that the resolution sees the same torch."""
    text = (ROOT / "install.sh").read_text(encoding="utf-8")
    match = re.search(r"TORCH_SPEC:-([^}\"]+)\}", text)
    return match.group(1) if match else "torch"


def image_requirements(ours: set[str]) -> list[str]:
    """The requirements of the packages installed in this interpreter that are not ``ours``
    (the project's own closure): what the machine ships besides (module docstring)."""
    from importlib.metadata import distributions

    from packaging.requirements import InvalidRequirement, Requirement

    found = set()
    for dist in distributions():
        name = canonical(dist.metadata["Name"] or "")
        if not name or name in ours or name in SKIP or name in REMOVED:
            continue
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if req.specifier and canonical(req.name) not in SKIP:
                found.add(f"{canonical(req.name)}{req.specifier}")
    return sorted(found)


def resolve(extras: str, timeout: float) -> dict[str, tuple[str, str]]:
    """``{canonical name: (name, version)}`` that a fresh install would get today, within the
    requirements of the packages installed beside ours (``image_requirements``)."""
    first = _resolve(extras, timeout, [])
    bounds = image_requirements(set(first))
    return _resolve(extras, timeout, bounds) if bounds else first


def _resolve(extras: str, timeout: float, bounds: list[str]) -> dict[str, tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        constraints = Path(tmp) / "image.txt"
        constraints.write_text("\n".join(bounds) + "\n", encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-c",
            str(constraints),
            torch_spec(),
            f"{ROOT}[{extras}]",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=tmp, check=False
        )
        if done.returncode != 0:
            lines = [ln.strip() for ln in done.stderr.splitlines() if "is ignored" not in ln]
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
            raise RuntimeError("pip could not resolve: " + " / ".join(errors[:2]))
        data = json.loads(report.read_text(encoding="utf-8"))
    out = {}
    for item in data["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if canonical(name) not in SKIP:
            out[canonical(name)] = (name, version)
    return out


def read_constraints(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def refresh() -> int:
    when = datetime.date.today().isoformat()
    where = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    with ThreadPoolExecutor(len(ENVIRONMENTS)) as pool:
        resolved = dict(
            zip(
                ENVIRONMENTS,
                pool.map(lambda extras: resolve(extras, 900), ENVIRONMENTS.values()),
                strict=True,
            )
        )
    for filename, extras in ENVIRONMENTS.items():
        lines = [
            "# Exact versions CI installs (install.sh passes this file to pip with -c) for",
            f"# `pip install '.[{extras}]'` beside {torch_spec()} (install.sh's pin): the",
            f"# newest releases within pyproject.toml's bounds on {when} ({where}),",
            "# written by `python3 .ci/constraints.py refresh`. Commit it once `bash .ci/run`",
            "# passes with it; .ci/run lists what is newer.",
        ]
        lines += [f"{name}=={version}" for name, version in sorted(resolved[filename].values())]
        (CI / filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote .ci/{filename}: {len(resolved[filename])} packages")
    return 0


def check(timeout: float) -> int:
    """Print one line; never fail (a network problem only says so)."""
    try:
        from packaging.version import Version  # the test extra's (installed before this runs)

        with ThreadPoolExecutor(len(ENVIRONMENTS)) as pool:
            resolved = dict(
                zip(
                    ENVIRONMENTS,
                    pool.map(lambda extras: resolve(extras, timeout), ENVIRONMENTS.values()),
                    strict=True,
                )
            )
        newer: dict[str, str] = {}
        for filename in ENVIRONMENTS:
            pinned = read_constraints(CI / filename)
            for key, (name, version) in resolved[filename].items():
                if key not in pinned:
                    newer[key] = f"{name} {version} (new)"
                elif Version(version) > Version(pinned[key]):
                    newer[key] = f"{name} {pinned[key]} -> {version}"
    except Exception as error:  # noqa: BLE001 - informational: nothing here may fail CI
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"newer releases: not checked ({reason[:200]})")
        return 0
    if newer:
        listed = ", ".join(sorted(newer.values()))
        print(
            "newer releases within pyproject.toml's bounds than CI's constraints "
            f"(`python3 .ci/constraints.py refresh` to test them): {listed}"
        )
    else:
        print(
            "newer releases: none; CI's constraints are the newest within pyproject.toml's bounds"
        )
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["refresh"]:
        return refresh()
    if argv[:1] == ["check"]:
        return check(float(argv[1]) if len(argv) > 1 else 300)
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
