"""The OpenVINO backend: a model's IR (``ir_cache.py`` makes and caches it) compiled and
run on the CPU.

- **Precision.** ``float32`` runs with OpenVINO's f32 precision hint (its CPU plugin would
  otherwise pick bf16 on CPUs that have it); ``bfloat16`` with the bf16 hint, only on CPUs
  with native bf16; ``int8`` runs an IR whose weights NNCF compressed (``ir_cache``) or
  that was quantized fully (``quantize``).
- **Exactness.** Items of different lengths are never padded into one inference: each run
  of equal-length items is one request, so every chunk gets its unbatched result, as with
  the torch backend's exact batching.
- **Threads.** ``INFERENCE_NUM_THREADS`` is the cores the process may use (see
  ``threads.py``); the LATENCY performance mode (one request at a time, all threads on it)
  measured faster end to end than THROUGHPUT here (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from .libc import keep_signal_stack, release_mapped_pages
from .runner import Done

log = logging.getLogger("w2v2cli")

PRECISIONS = ("float32", "bfloat16", "int8")
#: Samples of the warm-up inference: one second, 49 frames of wav2vec2, enough that every
#: sequence inside the model is longer than one frame, the hourglass's shortened one too
#: (see OpenVINOBackend).
WARMUP_SAMPLES = 16000
EXTRA_HINT = "install it with: pip install 'w2v2cli[openvino]'"


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line ``ConfigError`` saying how to install it."""
    try:
        import openvino
    except ImportError:
        message = f"the OpenVINO backend needs the openvino package; {EXTRA_HINT}"
        raise ConfigError(message) from None
    return openvino


def available() -> bool:
    """Whether the OpenVINO extra is installed (without importing it)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def cpu_capabilities() -> list[str]:
    """OpenVINO's CPU capabilities, e.g. ``["FP32", "INT8", "BF16"]``."""
    ov = import_openvino()
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "-"


def ir_precision_for(precision: str) -> str:
    """Which IR a precision runs: bf16 runs the fp32 IR with another hint; ``int8`` is
    weight-only, ``int8-full`` fully quantized (``quantize.py``)."""
    return precision if precision in ("int8", "int8-full") else "float32"


def dtype_of(ir_precision: str) -> str:
    """The ``--dtype`` an IR precision runs as."""
    return "int8" if ir_precision.startswith("int8") else "float32"


class OpenVINOBackend:
    """A compiled OpenVINO model; runs equal-length groups of a batch one request each."""

    name = "openvino"
    on_cuda = False
    needs_calibration = False

    def __init__(self, ir: Path, precision: str, threads: int) -> None:
        ov = import_openvino()
        hint = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}[precision]
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads),
        }
        try:
            with keep_signal_stack():
                compiled = ov.Core().compile_model(str(ir), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry, an old OpenVINO
            raise ModelError(f"OpenVINO cannot load {ir}: {ov_reason(exc)}") from None
        self._request = compiled.create_infer_request()
        self.precision = precision
        self.threads = int(threads)
        self.ir = ir
        # The CPU plugin copies the weights it runs with into its own memory, at
        # compilation and at the first inference; the IR's mapped weights file stays
        # resident but unused (~360 MB for a base model). Drop those pages after both,
        # and after every input shape met for the first time (``log_probs``).
        # The first inference is a short warm-up (one second of silence), for two reasons:
        # - OpenVINO 2026.4's CPU plugin gets every later inference wrong when its first
        #   one has a single-frame sequence anywhere (a 25-45 ms input; logits off by up
        #   to 21 on a base model, text garbled; or a 2-frame input to the NVIDIA
        #   hourglass, whose shortened sequence is then 1 frame). A first inference with
        #   longer sequences avoids that (tests/test_openvino.py, tests/test_nvidia.py);
        # - the weight copy made at the first inference then never coexists with a
        #   full-size activation arena (peak 0.92 instead of 1.05 GB, base model).
        self._weights = ir.with_suffix(".bin")
        self._shapes_seen: set[tuple[int, int]] = set()
        release_mapped_pages(self._weights)
        try:
            self._request.infer({0: np.zeros((1, WARMUP_SAMPLES), np.float32)})
        except Exception:  # noqa: BLE001 - a model with a longer receptive field: no warm-up
            log.debug("OpenVINO warm-up skipped", exc_info=True)
        else:
            release_mapped_pages(self._weights)

    def start(self, batch: np.ndarray, lengths: list[int]) -> Done:
        """Computes at once (the CPU is both host and device)."""
        return Done(self.log_probs(batch, lengths))

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        """Equal-length rows share one request; padding never enters a computation."""
        groups: dict[int, list[int]] = {}
        for row, n in enumerate(lengths):
            groups.setdefault(n, []).append(row)
        out: np.ndarray | None = None
        for n, rows in groups.items():
            logits = self._request.infer({0: np.ascontiguousarray(batch[rows, :n])})[0]
            lp = _log_softmax(np.asarray(logits, dtype=np.float32))
            if out is None:
                frames = max(lp.shape[1], 1)
                out = np.zeros((batch.shape[0], frames, lp.shape[2]), np.float32)
            if lp.shape[1] > out.shape[1]:
                out = np.pad(out, ((0, 0), (0, lp.shape[1] - out.shape[1]), (0, 0)))
            out[rows, : lp.shape[1]] = lp
        assert out is not None
        # A shape met for the first time may get kernels of its own, which pack their
        # weights from the IR's mapping again: drop those pages once more.
        shapes = {(len(rows), n) for n, rows in groups.items()}
        if not shapes <= self._shapes_seen:
            if len(self._shapes_seen) > 4096:  # bounded: forgetting costs one more release
                self._shapes_seen.clear()
            self._shapes_seen |= shapes
            release_mapped_pages(self._weights)
        return out

    def calibrate(self, inputs: object) -> None:
        """Nothing to calibrate (see ``quantize.PendingQuantization``)."""

    def close(self) -> None:
        with keep_signal_stack():
            self._request = None


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def ov_reason(exc: BaseException) -> str:
    """OpenVINO's message on one line, without its chain of ``Exception from
    src/...cpp:N:`` prefixes (the check that failed is what tells)."""
    text = re.sub(r"Exception from \S+:\d+:\s*", "", " ".join(str(exc).split()))
    return text[:300] or type(exc).__name__


def readable(ir: Path) -> Path:
    """``ir`` once OpenVINO has read it (its XML parsed, its weights file found whole),
    for callers that copy or quantize it rather than compile it; else ``ModelError``."""
    ov = import_openvino()
    try:
        with keep_signal_stack():
            ov.Core().read_model(str(ir))
    except Exception as exc:  # noqa: BLE001 - whatever OpenVINO finds wrong
        raise ModelError(f"OpenVINO cannot read {ir}: {ov_reason(exc)}") from None
    return ir
