#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary into lm/bin/ (git-ignored), from the kenlm source
# package on PyPI. Idempotent: does nothing when both tools are already there.
#
#   bash lm/build_kenlm.sh            # build if missing (~1 min on 2 cores)
#   bash lm/build_kenlm.sh --force    # rebuild
#
# Needs: python3 + pip, cmake >= 3.15, a C++ compiler, make, and the Debian packages
#   libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
#   zlib1g-dev libbz2-dev liblzma-dev   (libeigen3-dev is optional; only for `interpolate`)
#
# Environment: KENLM_VERSION (default 0.3.0, the `kenlm` source package on PyPI; the
# binary format is the one ctc-beam-decoder's KenLM and the Python module read), PYTHON
# (default python3), JOBS (default 2), KENLM_MAX_ORDER (default 6, as both engines' KenLM is
# built: a binary LM of a higher order would not load there).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin_dir="$here/bin"
build_dir="$here/_build"
version="${KENLM_VERSION:-0.3.0}"
python="${PYTHON:-python3}"
jobs="${JOBS:-2}"
max_order="${KENLM_MAX_ORDER:-6}"

if [[ "${1:-}" != "--force" && -x "$bin_dir/lmplz" && -x "$bin_dir/build_binary" ]]; then
    echo "KenLM tools already built:" >&2
    echo "$bin_dir/lmplz"
    echo "$bin_dir/build_binary"
    exit 0
fi

for tool in cmake make c++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' not found. On Debian/Ubuntu: apt-get install -y cmake build-essential" >&2
        exit 1
    fi
done

mkdir -p "$build_dir" "$bin_dir"

# 1. The source package. `--no-binary :all:` alone would also build kenlm's *build*
#    dependencies (cmake!) from source, for many minutes; `--no-build-isolation` makes pip
#    read the metadata with the installed setuptools instead, in a second. Where setuptools
#    is missing, fall back to `--no-binary kenlm`, which fetches the build dependencies as
#    wheels.
sdist="$build_dir/kenlm-$version.tar.gz"
if [[ ! -f "$sdist" ]]; then
    echo "Downloading kenlm $version source from PyPI..." >&2
    common=(download "kenlm==$version" --no-deps --disable-pip-version-check -q -d "$build_dir")
    if ! "$python" -m pip "${common[@]}" --no-binary :all: --no-build-isolation >&2; then
        "$python" -m pip "${common[@]}" --no-binary kenlm >&2
    fi
fi
if [[ ! -f "$sdist" ]]; then
    echo "error: pip did not produce $sdist" >&2
    exit 1
fi
src="$build_dir/kenlm-$version"
if [[ ! -f "$src/CMakeLists.txt" ]]; then
    tar -xzf "$sdist" -C "$build_dir"
fi

# 2. Configure and build only the two tools we need (tests, python bindings and the other
#    executables are skipped).
echo "Building lmplz and build_binary (Release, -j$jobs)..." >&2
if ! cmake -S "$src" -B "$build_dir/cmake" -DCMAKE_BUILD_TYPE=Release \
        -DKENLM_MAX_ORDER="$max_order" -DCOMPILE_TESTS=OFF -DENABLE_PYTHON=OFF \
        -DBUILD_TESTING=OFF >"$build_dir/cmake.log" 2>&1; then
    tail -n 30 "$build_dir/cmake.log" >&2
    echo "error: cmake configure failed (full log: $build_dir/cmake.log). Missing libraries?" >&2
    echo "On Debian/Ubuntu: apt-get install -y libboost-program-options-dev libboost-system-dev" \
        "libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev" >&2
    exit 1
fi
if ! cmake --build "$build_dir/cmake" --target lmplz build_binary -j "$jobs" \
        >"$build_dir/build.log" 2>&1; then
    tail -n 30 "$build_dir/build.log" >&2
    echo "error: build failed (full log: $build_dir/build.log)" >&2
    exit 1
fi

install -m 755 "$build_dir/cmake/bin/lmplz" "$build_dir/cmake/bin/build_binary" "$bin_dir/"
echo "KenLM tools built:" >&2
echo "$bin_dir/lmplz"
echo "$bin_dir/build_binary"
