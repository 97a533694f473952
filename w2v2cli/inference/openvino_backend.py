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
- **Model files.** ``-m x.xml`` (an IR as the Open Model Zoo's converter writes it) and
  ``-m x.onnx`` are read as they are (``open_model_file``; ``models/ir_file.py`` says what
  comes from the wav2vec2-base card): a static input shape is made dynamic, the output size
  is checked against the alphabet and the frame counts against the card's geometry (two
  probe inferences), each a one-line ``ModelError`` naming the file. ``bfloat16`` runs with
  the bf16 hint, ``int8`` compresses the weights in memory (NNCF, weight-only: no
  calibration, nothing written beside the user's file); full int8 quantization is refused.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from ..models import LoadedModel
from ..models.families import output_frames
from ..models.ir_file import output_size_problem
from ..options import ModelOptions
from .libc import keep_signal_stack, release_mapped_pages
from .runner import Done

log = logging.getLogger("w2v2cli")

Notify = Callable[[str], None]

PRECISIONS = ("float32", "bfloat16", "int8")
#: Samples of the warm-up inference: one second, 49 frames of wav2vec2, enough that every
#: sequence inside the model is longer than one frame, the hourglass's shortened one too
#: (see OpenVINOBackend).
WARMUP_SAMPLES = 16000
#: Input lengths a model file's frame counts are measured at (``open_model_file``): one
#: second, and a length whose frame count tells a stride or a kernel apart.
PROBE_SAMPLES = (WARMUP_SAMPLES, 23_999)
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

    def __init__(self, ir: Path, precision: str, threads: int, model: Any = None) -> None:
        """Compile ``ir`` (an IR or ONNX file), or ``model``, an ``openvino.Model`` read from
        it and changed in memory (``open_model_file``)."""
        ov = import_openvino()
        hint = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}[precision]
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads),
        }
        try:
            with keep_signal_stack():
                source = str(ir) if model is None else model
                compiled = ov.Core().compile_model(source, "CPU", config)
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
        self._weights = ir.with_suffix(".bin") if ir.suffix.lower() == ".xml" else ir
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

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        """The shape of the network's output for one input of ``num_samples`` (silence)."""
        out = self._request.infer({0: np.zeros((1, num_samples), np.float32)})[0]
        return tuple(int(d) for d in np.shape(out))

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


def model_file_precision(options: ModelOptions) -> str:
    """The precision a model file runs at for ``--dtype`` (module docstring, "Model
    files"); a one-line ``ConfigError`` for what it cannot run at."""
    precision = "float32" if options.dtype == "auto" else options.dtype
    if precision not in PRECISIONS:
        raise ConfigError(
            f"the OpenVINO backend runs {', '.join(PRECISIONS)}, not {precision} "
            "(float16 is a CUDA precision; an FP16 IR runs as float32)"
        )
    if precision == "bfloat16" and "BF16" not in cpu_capabilities():
        raise ConfigError(
            "--dtype bfloat16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this "
            f"one offers {', '.join(cpu_capabilities())}: use float32 or int8"
        )
    if precision == "int8" and (options.int8 == "full" or options.calibration):
        raise ConfigError(
            f"{options.model} is a model file: --dtype int8 compresses its weights "
            "(--int8 weights); full quantization calibrated on audio is not done for it"
        )
    return precision


def open_model_file(
    parts: LoadedModel, options: ModelOptions, threads: int, notify: Notify | None = None
) -> OpenVINOBackend:
    """An OpenVINO IR or ONNX file (``parts`` from ``light.load_model_file``), read as it
    is and checked (module docstring, "Model files"); every problem is one ``ModelError``
    or ``ConfigError`` line naming the file."""
    path = parts.ref.path
    assert path is not None
    precision = model_file_precision(options)
    ov = import_openvino()
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise ModelError(
            f"{path} is an OpenVINO IR without its weights: {path.with_suffix('.bin').name} "
            "is not beside it"
        )
    # The file's own front end, not every one in turn (``Core.read_model``): the others'
    # attempts on a file that is not a model print lines of their own on stderr.
    is_ir = path.suffix.lower() == ".xml"
    front_end = ov.frontend.FrontEndManager().load_by_framework("ir" if is_ir else "onnx")
    if not front_end.supported(str(path)):
        what = "an OpenVINO IR" if is_ir else "an ONNX model"
        raise ModelError(f"OpenVINO cannot read {path}: it is not {what}")
    try:
        with keep_signal_stack():
            model = front_end.convert(front_end.load(str(path)))
    except Exception as exc:  # noqa: BLE001 - whatever OpenVINO finds wrong
        reason = ov_reason(exc)
        if "Incorrect weights in bin file" in reason:
            raise ModelError(
                f"{path.with_suffix('.bin')} is cut short or is not the weights file of "
                f"{path.name} (OpenVINO finds weights outside it)"
            ) from None
        raise ModelError(f"OpenVINO cannot read {path}: {reason}") from None
    problem = _network_problem(model, parts)
    if problem is None and not model.inputs[0].partial_shape.is_dynamic:
        try:  # a static input (one length): any batch and length, as the OMZ demo does
            model.reshape({model.inputs[0]: ov.PartialShape([-1, -1])})
        except Exception as exc:  # noqa: BLE001
            problem = f"its input shape cannot be made dynamic ({ov_reason(exc)})"
    if problem is not None:
        raise ModelError(f"{path} cannot run as a CTC speech model: {problem}")
    if precision == "int8":
        model = _compress_weights(model, notify)
    backend = OpenVINOBackend(path, precision, threads, model=model)
    del model
    try:
        problem = _measured_problem(backend, parts)
    except Exception as exc:  # noqa: BLE001 - the network fails on a plain input
        problem = f"it fails on one second of audio ({ov_reason(exc)})"
    if problem is not None:
        backend.close()
        raise ModelError(f"{path} cannot run as a CTC speech model: {problem}")
    return backend


def _vocab_beside(parts: LoadedModel) -> Path | None:
    assert parts.ref.path is not None
    vocab = parts.ref.path.parent / "vocab.json"
    return vocab if vocab.is_file() else None


def _network_problem(model: Any, parts: LoadedModel) -> str | None:
    """What makes ``model`` (read, not compiled) unlike the card's network: one input of
    samples (B x N), one output of scores (B x frames x classes) as many as the alphabet."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return (
            f"it has {len(model.inputs)} inputs and {len(model.outputs)} outputs, not one "
            "input of samples and one output of scores"
        )
    if model.inputs[0].partial_shape.rank.is_static and len(model.inputs[0].partial_shape) != 2:
        return f"its input has shape {model.inputs[0].partial_shape}, not batch x samples"
    out = model.outputs[0].partial_shape
    if out.rank.is_static and len(out) != 3:
        return f"its output has shape {out}, not batch x frames x classes"
    if out.rank.is_static and out[2].is_static:
        return output_size_problem(out[2].get_length(), parts.vocabulary, _vocab_beside(parts))
    return None


def _measured_problem(backend: OpenVINOBackend, parts: LoadedModel) -> str | None:
    """The output size and frame counts of the compiled network, measured on
    ``PROBE_SAMPLES``, against the alphabet and the card's geometry."""
    for n in PROBE_SAMPLES:
        shape = backend.output_shape(n)
        if len(shape) != 3:
            return f"its output has shape {list(shape)}, not batch x frames x classes"
        problem = output_size_problem(shape[2], parts.vocabulary, _vocab_beside(parts))
        if problem is not None:
            return problem
        expected = output_frames(parts.config, n)
        if shape[1] != expected:
            return (
                f"it outputs {shape[1]} frames for {n} samples where wav2vec2-base's "
                f"geometry ({parts.samples_per_frame} samples a frame) gives {expected}, so "
                "its frames cannot be timed"
            )
    return None


def _compress_weights(model: Any, notify: Notify | None) -> Any:
    """``model`` with its weights compressed to int8 (NNCF, weight-only, in memory)."""
    try:
        import nncf
    except ImportError:
        raise ConfigError(f"--dtype int8 needs the nncf package; {EXTRA_HINT}") from None
    if notify is not None:
        notify("compressing the weights to int8 (in memory: the model file is not changed)")
    logging.getLogger("nncf").setLevel(logging.ERROR)
    # NNCF draws its progress bar on stdout, which may be carrying results (--stdout).
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
