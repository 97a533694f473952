#!/usr/bin/env bash
# Install w2v2cli with its test, OpenVINO and VAD extras on a fresh Debian/Ubuntu machine:
#   system packages (espeak-ng for test speech; ffmpeg for the subtitle example; cmake, a C++ compiler and Boost to build
#   KenLM's lmplz/build_binary), the CPU build of PyTorch, the project itself, and KenLM's
#   tools into lm/bin/. Safe to run again.
# TORCH_SPEC overrides the PyTorch requirement (e.g. a CUDA build on a GPU machine).
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
"$PY" -m pip install -q -e ".[test,openvino,vad]"
"$PY" -m pip check
bash lm/build_kenlm.sh
echo "w2v2cli installed: $(command -v w2v2 || echo "$PY -m w2v2cli")"
