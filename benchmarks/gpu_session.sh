#!/usr/bin/env bash
# One prepared run for a lent GPU machine (run by hand, from the repository root): the CUDA
# tests, then the GPU benchmark (model only, end to end with the default file workers and
# audio readers and with neither, the transformers pipeline), then the host's own rate on 1, 4, 8
# and all cores. Everything it prints and writes goes under $OUT (default /tmp/w2v2-gpu),
# RESULTS.md included, so that one call brings all of it back:
#
#     bash benchmarks/gpu_session.sh          # ~10 min on an H100 or H200
#
# It needs the project installed (`bash install.sh`, with TORCH_SPEC naming a CUDA build of
# torch) and, for the host benchmark, espeak-ng and ffmpeg (its corpus is made from them).
set -u
OUT=${OUT:-/tmp/w2v2-gpu}
mkdir -p "$OUT"
step() { echo "== $1 ($(date -u +%H:%M:%S))" | tee -a "$OUT/summary.txt"; }

step machine
{ nvidia-smi; lscpu; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
    > "$OUT/machine.txt" 2>&1

step "CUDA tests"
python3 -m pytest -q tests/test_cuda.py tests/test_workers.py tests/test_readers.py \
    > "$OUT/tests.txt" 2>&1
echo "tests: exit $?" >> "$OUT/summary.txt"

step "GPU benchmark"
python3 benchmarks/bench_gpu.py --profile --write > "$OUT/bench_gpu.txt" 2>&1
echo "bench_gpu: exit $?" >> "$OUT/summary.txt"

step "host benchmark"
cores=$(nproc)
python3 benchmarks/bench_host.py --repeat 4 --cores "1,4,8,$cores" --formats "json,srt" \
    --decoders greedy --decode-workers 0,default --read-workers 0,default --rounds 2 \
    --max-wait 10 --write --section "host: file workers and audio readers, GPU machine" \
    > "$OUT/bench_host.txt" 2>&1
echo "bench_host: exit $?" >> "$OUT/summary.txt"

cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
step done
