"""int8 on OpenVINO: weight-only compression, or full quantization calibrated on audio.

``--dtype int8`` has two methods (``--int8``):

- ``weights``: NNCF compresses the weights to int8 (``ir_cache.convert``);
  activations stay fp32. No data needed; the same IR on every machine.
- ``full``: NNCF post-training quantization of weights *and* activations, calibrated on
  audio: the first chunks of the run's own input, or ``--calibration`` files. It uses the
  CPU's int8 dot-product instructions (VNNI, AMX), where it is much faster (3.67x fp32 on a
  Zen 4 with VNNI, against 1.71x for weights-only); on AVX2 alone it is no faster than
  fp32 (benchmarks/RESULTS.md). NNCF's transformer preset keeps the sensitive operations
  (softmax, layer norm, GELU) in floating point, and the first convolution, which reads the
  raw waveform, stays fp32 as well (it changed 2x more words when quantized).
- ``auto`` (default): ``full`` when ``--calibration`` is given or the CPU has VNNI, AMX or
  AVX-512, else ``weights``.

The calibrated IR is cached like the others, keyed by the model, ``int8-full`` and what it
was calibrated on (the ``--calibration`` files' names, sizes and times, or "input": then
the first run calibrates and later runs reuse it). A run with less than
``MIN_CALIBRATION_SECONDS`` of audio does not calibrate from its input: it says so and uses
weight-only int8 for that run. A calibrated entry that cannot be used is set aside, said so,
and calibrated again from this run's audio (``ir_cache.open_entry``); calibrating
and writing it happen under the entry's lock, so two runs calibrating at once write it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .. import chunking
from ..audio import load_audio
from ..chunking import ChunkPlan
from ..errors import ConfigError, W2V2Error
from ..models import LoadedModel, family_of
from ..options import INT8_METHODS, ChunkOptions, ModelOptions
from ..records import Chunk
from . import ir_cache, ir_inputs
from . import openvino_backend as ovb
from .libc import keep_signal_stack
from .runner import Done, chunk_features

log = logging.getLogger("w2v2cli")

__all__ = [
    "INT8_METHODS",
    "CALIBRATION_CHUNKS",
    "MIN_CALIBRATION_SECONDS",
    "choose_method",
    "fast_int8_cpu",
    "calibration_id",
    "calibration_chunks",
    "quantize",
    "open_full_int8",
    "export_ir",
    "PendingQuantization",
]

#: At most this many chunks calibrate (NNCF's statistics converge well before).
CALIBRATION_CHUNKS = 32
#: Less input audio than this is not enough to calibrate on; weights-only int8 instead.
MIN_CALIBRATION_SECONDS = 30.0
#: Instruction sets on which full int8 quantization beats fp32 (and weights-only int8).
_FAST_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx512f"})
FULL = "int8-full"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_int8_cpu() -> bool:
    """Whether this CPU runs fully quantized int8 faster than weight-only int8."""
    return bool(cpu_flags() & _FAST_INT8_FLAGS)


def choose_method(options: ModelOptions) -> str:
    """``weights`` or ``full`` for ``--dtype int8`` (see the module docstring)."""
    if options.int8 != "auto":
        return options.int8
    return "full" if options.calibration or fast_int8_cpu() else "weights"


def calibration_id(paths: Sequence[Path]) -> str:
    """What a calibrated IR depends on besides the model: the files or the run's input."""
    if not paths:
        return "input"
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def calibration_chunks(paths: Sequence[Path], plan: ChunkPlan, sampling_rate: int) -> list[Chunk]:
    """The first ``CALIBRATION_CHUNKS`` chunks of ``--calibration`` files, cut as the run
    cuts its input; a file that cannot be read is a ``ConfigError``."""
    chunks: list[Chunk] = []
    for i, path in enumerate(paths):
        try:
            samples = load_audio(path, sampling_rate)
        except W2V2Error as exc:
            raise ConfigError(f"--calibration: {exc}") from None
        chunks += chunking.split(i, samples, plan)
        if len(chunks) >= CALIBRATION_CHUNKS:
            break
    return chunks[:CALIBRATION_CHUNKS]


def quantize(
    fp32_ir: Path,
    inputs: Sequence[np.ndarray],
    target: Path,
    info: dict,
    notify: Callable[[str], None],
) -> Path:
    """Quantize the fp32 IR on ``inputs`` (model input rows) and save it at ``target``
    (atomically, ``ir_cache.save_ir``)."""
    ov = ovb.import_openvino()
    try:
        import nncf
    except ImportError:
        raise ConfigError(f"--dtype int8 needs the nncf package; {ovb.EXTRA_HINT}") from None
    if not inputs:
        raise ConfigError("no audio to calibrate int8 quantization on")
    started = time.perf_counter()
    model = ov.Core().read_model(str(fp32_ir))
    logging.getLogger("nncf").setLevel(logging.ERROR)
    first_conv = nncf.IgnoredScope(patterns=[r".*conv_layers\.0\..*"], validate=False)
    # NNCF draws its progress bars on stdout, which may be carrying results (--stdout);
    # it compiles models on this thread: keep its signal stack (libc.keep_signal_stack).
    with contextlib.redirect_stdout(sys.stderr), keep_signal_stack():
        quantized = nncf.quantize(
            model,
            nncf.Dataset(list(inputs), lambda row: row[None, :]),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(inputs),
            ignored_scope=first_conv,
        )
    ir_cache.save_ir(quantized, target, info)
    notify(f"quantized in {time.perf_counter() - started:.0f} s")
    return target / ir_cache.IR_FILE


class PendingQuantization:
    """A backend that is quantized on the first audio it is given (``calibrate``), then runs
    as ``openvino_backend.OpenVINOBackend``. ``Engine`` calls ``calibrate`` with its first
    chunks before running them."""

    name = "openvino"
    on_cuda = False
    precision = "int8"

    def __init__(
        self,
        parts: LoadedModel,
        options: ModelOptions,
        threads: int,
        target: Path,
        notify: Callable[[str], None],
    ) -> None:
        self._parts, self._options, self._target, self._notify = parts, options, target, notify
        self.threads = threads
        self._inner: ovb.OpenVINOBackend | ir_inputs.FlatFrames | None = None

    @property
    def needs_calibration(self) -> bool:
        return self._inner is None

    @property
    def ir(self) -> Path | None:
        return None if self._inner is None else self._inner.ir

    def calibrate(self, inputs: Sequence[np.ndarray]) -> None:
        if self._inner is not None:
            return
        rate = self._parts.sampling_rate
        seconds = sum(len(x) for x in inputs) / rate
        source = "--calibration audio" if self._options.calibration else "this run's input"
        if not self._options.calibration and seconds < MIN_CALIBRATION_SECONDS:
            self._notify(
                f"int8: {seconds:.0f} s of input is too little to calibrate full quantization "
                f"on (at least {MIN_CALIBRATION_SECONDS:.0f} s); this run uses weight-only "
                "int8 (--calibration FILES calibrates on other audio)"
            )
            self._inner = ir_cache.open_openvino(
                self._parts, self._options, "int8", self.threads, self._notify
            )
            return

        def build(target: Path) -> None:
            fp32 = ir_cache.cached_ir(self._parts, self._options, "float32", self._notify)
            self._notify(
                f"calibrating int8 quantization of {self._parts.name} on {len(inputs)} "
                f"chunks ({seconds:.0f} s) of {source}; this happens once, the result is "
                f"cached in {target.parent}"
            )
            info = {
                "model": self._parts.name,
                "precision": FULL,
                "calibration": calibration_id(self._options.calibration),
                "openvino": ovb.package_version("openvino"),
                "converter": ir_cache.CONVERTER_VERSION,
            }
            quantize(fp32, inputs, target, info, self._notify)

        # Under the entry's lock: a run that calibrated it meanwhile is used as it is.
        self._inner = ir_cache.open_entry(
            self._target, FULL, self._compile, self._notify, build, "calibrated again"
        )

    def _compile(self, ir: Path) -> ovb.OpenVINOBackend:
        return ovb.OpenVINOBackend(ir, "int8", self.threads)

    def start(self, batch: np.ndarray, lengths: list[int]) -> Done:
        """Computes at once (the CPU is both host and device)."""
        return Done(self.log_probs(batch, lengths))

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        if self._inner is None:
            raise RuntimeError("the int8 model is not calibrated yet")
        return self._inner.log_probs(batch, lengths)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def open_full_int8(
    parts: LoadedModel, options: ModelOptions, threads: int, notify: Callable[[str], None]
) -> ovb.OpenVINOBackend | ir_inputs.FlatFrames | PendingQuantization:
    """The fully quantized model from the cache, or one that calibrates on first use.
    A log-mel model (Parakeet CTC, LASR) gets weight-only int8: calibration reads samples."""
    ovb.import_openvino()
    if family_of(parts.config).input == "mel":
        notify(f"int8: {parts.name} gets weight-only int8 (full int8 calibrates on samples)")
        return ir_cache.open_openvino(parts, options, "int8", threads, notify)
    folder = ir_cache.model_folder(parts, options)
    key = ir_cache.cache_key(folder, FULL, extra=calibration_id(options.calibration))
    target = ir_cache.cache_root(options) / key
    backend = ir_cache.open_entry(
        target,
        FULL,
        lambda ir: ovb.OpenVINOBackend(ir, "int8", threads),
        notify,
        remedy="calibrated again on first use",
    )
    if backend is not None:
        log.debug("OpenVINO IR for %s: %s", parts.name, target)
        return backend
    # A missing entry, or one set aside as damaged: calibrated on first use.
    return PendingQuantization(parts, options, threads, target, notify)


def export_ir(parts: LoadedModel, options: ModelOptions, notify: Callable[[str], None]) -> Path:
    """The IR ``w2v2 export --dtype int8`` writes: fully quantized on ``--calibration``
    audio when given (or ``--int8 full``, which needs it), else weight-only. The exporting
    machine's CPU does not decide: the folder may run elsewhere."""
    method = (
        options.int8 if options.int8 != "auto" else ("full" if options.calibration else "weights")
    )
    if method == "weights":
        return ir_cache.cached_ir(parts, options, "int8", notify)
    if not options.calibration:
        raise ConfigError("export --int8 full needs --calibration audio to calibrate on")
    backend = open_full_int8(parts, options, 1, notify)
    if isinstance(backend, PendingQuantization):
        plan = chunking.plan(ChunkOptions(), parts.sampling_rate, parts.samples_per_frame)
        chunks = calibration_chunks(options.calibration, plan, parts.sampling_rate)
        backend.calibrate([chunk_features(parts, c.samples)[0] for c in chunks])
    assert backend.ir is not None
    ir = backend.ir
    backend.close()
    return ir
