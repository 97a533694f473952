#!/usr/bin/env bash
# Install w2v2cli with its test, OpenVINO, VAD and Ray extras on a fresh Debian/Ubuntu
#   machine: system packages (espeak-ng for test speech; ffmpeg for the subtitle example;
#   cmake, a C++ compiler and Boost to build KenLM's lmplz/build_binary), the CPU build of
#   PyTorch, the project itself, and KenLM's tools into lm/bin/. Safe to run again.
# TORCH_SPEC overrides the PyTorch requirement (e.g. a CUDA build on a GPU machine).
# W2V2_BEAM_ENGINE=pyctcdecode installs without ctc-beam-decoder, as happens by itself on
# Linux x86-64 with glibc older than 2.35 (see below).
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3}"

$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    espeak-ng ffmpeg cmake g++ make \
    libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev \
    libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev >/dev/null

# PyTorch first, pinned: an unpinned torch would pull gigabytes of CUDA packages.
"$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"

# The beam-search engine. pyproject's markers install ctc-beam-decoder on Linux x86-64, but
# its wheel needs glibc >= 2.35, which no marker can see: on an older glibc pip would stop
# with "No matching distribution found for ctc-beam-decoder". There (or when
# W2V2_BEAM_ENGINE=pyctcdecode asks for it) the project is installed without it, with the
# fallback engine (pyctcdecode + kenlm) and otherwise pyproject's own requirements.
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

if [ "$fallback" = 0 ]; then
    "$PY" -m pip install -q -e ".[test,openvino,vad,ray]"
    "$PY" -m pip check
else
    echo "Installing without ctc-beam-decoder (glibc older than 2.35, or" \
        "W2V2_BEAM_ENGINE=pyctcdecode): beam search will run on pyctcdecode." >&2
    "$PY" -m pip install -q --no-deps -e ".[test,openvino,vad,ray]"
    "$PY" -m pip install -q packaging
    reqs="$(mktemp)"
    trap 'rm -f "$reqs"' EXIT
    # pyproject's requirements for the base set and the extras, less ctc-beam-decoder.
    "$PY" - >"$reqs" <<'PYTHON'
from importlib.metadata import requires

from packaging.requirements import Requirement

wanted = {"pyctcdecode>=0.5", "kenlm"}
for line in requires("w2v2cli") or []:
    req = Requirement(line)
    if req.name == "ctc-beam-decoder":
        continue
    if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", "test", "openvino", "vad", "ray")):
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        wanted.add(f"{req.name}{extras}{req.specifier}")
print("\n".join(sorted(wanted)))
PYTHON
    echo "(pip may note that w2v2cli requires ctc-beam-decoder: expected here.)" >&2
    "$PY" -m pip install -q -r "$reqs"
    # The project's metadata still names ctc-beam-decoder; every other requirement must hold.
    if ! problems="$("$PY" -m pip check 2>&1)"; then
        problems="$(printf '%s\n' "$problems" | grep -v "requires ctc-beam-decoder" || true)"
        if [ -n "$problems" ]; then
            printf '%s\n' "$problems" >&2
            exit 1
        fi
    fi
fi
bash lm/build_kenlm.sh
echo "w2v2cli installed: $(command -v w2v2 || echo "$PY -m w2v2cli")"
