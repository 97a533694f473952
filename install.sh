#!/usr/bin/env bash
# Install w2v2cli as users get it (the OpenVINO, VAD and Ray extras) plus the test tools on a
#   fresh Debian/Ubuntu machine: system packages (espeak-ng for test speech; ffmpeg for the
#   subtitle example; chromium for the tests that open the HTML reports headless; cmake, a
#   C++ compiler and Boost to build KenLM's lmplz/build_binary),
#   the CPU build of PyTorch, the project itself, and KenLM's tools into lm/bin/. Safe to
#   run again.
#
# Environment:
#   PYTHON            the interpreter to install into (default python3; a venv's python
#                     installs into that venv).
#   TORCH_SPEC        the PyTorch requirement (default torch==2.13.0: the CPU build; an
#                     unpinned torch pulls gigabytes of CUDA packages). A CUDA build on a GPU
#                     machine, say.
#   W2V2_EXTRAS       the project's extras (default openvino,ray,vad,test).
#   W2V2_CONSTRAINTS  a pip constraints file: the exact versions CI last passed with
#                     (default .ci/constraints.txt; .ci/constraints-pyctcdecode.txt for the
#                     fallback below). Empty: the newest releases pyproject.toml allows, as
#                     a user's `pip install` gets them.
#   W2V2_BEAM_ENGINE=pyctcdecode  installs without ctc-beam-decoder, with the pyctcdecode
#                     extra, as happens by itself on Linux x86-64 with glibc older than 2.35
#                     (see below).
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3}"
EXTRAS="${W2V2_EXTRAS:-openvino,ray,vad,test}"

system_packages=(
    espeak-ng ffmpeg cmake g++ make
    libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
    libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev
)
# apt-get only when something is missing (a second run, or the second test environment,
# skips the package lists' download).
missing=0
for pkg in "${system_packages[@]}"; do
    case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" in
    ii*) ;;
    *) missing=1 ;;
    esac
done
# Chromium for the tests of the HTML reports (they skip without it): Debian's chromium
# package, where apt has one (Ubuntu ships Chromium only as a snap).
browser=0
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    missing=1
    browser=1
fi
if [ "$missing" = 1 ]; then
    $SUDO apt-get update -qq
    if [ "$browser" = 1 ]; then
        if apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            system_packages+=(chromium)
        else
            echo "apt has no chromium package: the tests of the HTML reports will skip." >&2
        fi
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${system_packages[@]}" >/dev/null
fi

# The beam-search engine. pyproject's markers install ctc-beam-decoder on Linux x86-64, but
# its wheel needs glibc >= 2.35, which no marker can see: on an older glibc pip would stop
# with "No matching distribution found for ctc-beam-decoder". There (or when
# W2V2_BEAM_ENGINE=pyctcdecode asks for it) the project is installed without it, with the
# fallback engine (the pyctcdecode extra) and otherwise pyproject's own requirements.
glibc_ok() {
    "$PY" -c 'import platform, sys
lib, version = platform.libc_ver()
sys.exit(0 if lib == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 35) else 1)'
}
fallback=0
if [ "${W2V2_BEAM_ENGINE:-}" = "pyctcdecode" ]; then
    fallback=1
elif [ "$(uname -s)" = "Linux" ] && [ "$(uname -m)" = "x86_64" ] && ! glibc_ok; then
    fallback=1
fi

# CI's versions: pyproject.toml bounds what users get; the constraints files pin what CI
# installs to what the suite last passed with (`.ci/constraints.py refresh` moves them on).
if [ "$fallback" = 0 ]; then
    constraints="${W2V2_CONSTRAINTS-.ci/constraints.txt}"
else
    constraints="${W2V2_CONSTRAINTS-.ci/constraints-pyctcdecode.txt}"
fi
pip_install=("$PY" -m pip install -q)
if [ -n "$constraints" ]; then pip_install+=(-c "$constraints"); fi

# PyTorch first, pinned: an unpinned torch would pull gigabytes of CUDA packages.
"$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"

if [ "$fallback" = 0 ]; then
    "${pip_install[@]}" -e ".[$EXTRAS]"
    # What users install has neither pyctcdecode nor kenlm (they hold numpy below 2, and
    # pip check would fail beside numpy 2): remove those an older install or the old test
    # extra left, unless the extras asked for them.
    case ",$EXTRAS," in
    *,pyctcdecode,*) ;;
    *)
        leftovers=()
        for pkg in pyctcdecode kenlm; do
            if "$PY" -m pip show -q "$pkg" >/dev/null 2>&1; then leftovers+=("$pkg"); fi
        done
        if [ "${#leftovers[@]}" -gt 0 ]; then
            echo "Removing ${leftovers[*]}: not part of what users install (their tests run" \
                "in the second environment, .ci/pyctcdecode)." >&2
            "$PY" -m pip uninstall -q -y "${leftovers[@]}"
        fi
        ;;
    esac
    "$PY" -m pip check
else
    echo "Installing without ctc-beam-decoder (glibc older than 2.35, or" \
        "W2V2_BEAM_ENGINE=pyctcdecode): beam search will run on pyctcdecode." >&2
    case ",$EXTRAS," in
    *,pyctcdecode,*) ;;
    *) EXTRAS="$EXTRAS,pyctcdecode" ;;
    esac
    "${pip_install[@]}" --no-deps -e ".[$EXTRAS]"
    "$PY" -m pip install -q packaging
    reqs="$(mktemp)"
    trap 'rm -f "$reqs"' EXIT
    # pyproject's requirements for the base set and the extras, less ctc-beam-decoder.
    W2V2_EXTRAS="$EXTRAS" "$PY" - >"$reqs" <<'PYTHON'
import os
from importlib.metadata import requires

from packaging.requirements import Requirement

extras = ["", *os.environ["W2V2_EXTRAS"].split(",")]
wanted = set()
for line in requires("w2v2cli") or []:
    req = Requirement(line)
    if req.name == "ctc-beam-decoder":
        continue
    if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras):
        extras_of = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        wanted.add(f"{req.name}{extras_of}{req.specifier}")
print("\n".join(sorted(wanted)))
PYTHON
    echo "(pip may note that w2v2cli requires ctc-beam-decoder: expected here.)" >&2
    "${pip_install[@]}" -r "$reqs"
    # The project's metadata still names ctc-beam-decoder; every other requirement must hold.
    if ! problems="$("$PY" -m pip check 2>&1)"; then
        problems="$(printf '%s\n' "$problems" | grep -v "requires ctc-beam-decoder" || true)"
        if [ -n "$problems" ]; then
            printf '%s\n' "$problems" >&2
            exit 1
        fi
    fi
fi
PYTHON="$PY" bash lm/build_kenlm.sh
echo "w2v2cli installed: $("$PY" -c 'import shutil, sys, os
w = os.path.join(os.path.dirname(sys.executable), "w2v2")
print(w if os.path.exists(w) else (shutil.which("w2v2") or sys.executable + " -m w2v2cli"))')"
