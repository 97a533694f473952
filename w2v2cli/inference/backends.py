"""Choosing and opening the backend that runs the model: ``--backend auto|torch|openvino``.

``auto`` runs OpenVINO on the CPU when the extra is installed (faster, same text at
float32; see ``openvino_backend.py`` and ``ir_cache.py``) and PyTorch otherwise; CUDA
always runs PyTorch. When OpenVINO cannot convert a model family, ``auto`` says so in one
line and uses PyTorch;
``--backend openvino`` fails with that line instead. Families OpenVINO is known not to run
here (``models/families.py``: W2V-BERT, whose filterbank input and mask the IR does not
take) go to PyTorch under ``auto`` without a notice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable

from ..cores import resolve_threads
from ..errors import ConfigError, ConversionError
from ..models import LoadedModel, ModelRef, family_of, load_model, load_parts, resolve_dtype
from ..models.ref import EXPORTED, converted, locate_model
from ..options import ModelOptions
from . import ir_cache, openvino_backend
from .quantize import choose_method, open_full_int8
from .runner import Backend

log = logging.getLogger("w2v2cli")

Notify = Callable[[str], None]


def _wants_cuda(device: str) -> bool:
    """Whether ``device`` means a GPU. For ``auto``, torch is asked only where an NVIDIA
    driver is loaded: elsewhere there is no CUDA, and the OpenVINO path then never imports
    torch (about 2 s and 200 MB saved at start-up)."""
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    if not os.path.exists("/proc/driver/nvidia/version") and sys.platform.startswith("linux"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(ref: ModelRef, options: ModelOptions) -> str:
    """``torch`` or ``openvino`` for this model and these options (module docstring)."""
    if ref.is_model_file:  # an OpenVINO IR or ONNX file: OpenVINO runs it, nothing else
        if options.backend == "torch" or options.device.startswith("cuda"):
            raise ConfigError(
                f"{options.model} is a model file OpenVINO reads: it runs on the OpenVINO "
                "backend only, on the CPU (--backend openvino or auto, --device cpu or auto)"
            )
        return "openvino"
    exported = ref.kind == EXPORTED
    if options.backend == "torch":
        if exported:
            raise ConfigError(
                f"{options.model} holds an OpenVINO model (w2v2 export); run it "
                "with --backend openvino or auto"
            )
        return "torch"
    if exported:
        if options.device.startswith("cuda"):
            raise ConfigError("an exported OpenVINO model runs on the CPU, not --device cuda")
        return "openvino"
    if options.backend == "openvino":
        if options.device.startswith("cuda"):
            raise ConfigError(
                "the OpenVINO backend runs on the CPU; use --backend torch for --device cuda"
            )
        return "openvino"
    if _wants_cuda(options.device):
        return "torch"
    if openvino_backend.available():
        return "openvino"
    if options.dtype == "int8":
        raise ConfigError(
            f"--dtype int8 runs on the OpenVINO backend; {openvino_backend.EXTRA_HINT}"
        )
    return "torch"


def open_backend(
    options: ModelOptions, *, exact: bool = True, notify: Notify | None = None
) -> tuple[LoadedModel, Backend]:
    """Load what the chosen backend needs and open it; raises ``ModelError``/``ConfigError``."""
    notify = notify or log.info
    threads = resolve_threads(options.threads)
    ref = locate_model(options.model, options.cache_dir, options.revision)
    chosen = choose_backend(ref, options)
    ref = converted(ref, notify)  # a checkpoint file: its model folder (converted once)
    if ref.is_model_file:
        parts = load_parts(ref, options.language, notify)
        backend = openvino_backend.open_model_file(parts, options, threads, notify)
        return dataclasses.replace(parts, dtype=backend.precision), backend
    if chosen == "openvino":
        # A standard folder on disk is read without transformers, so torch is never
        # imported; anything else goes through transformers (models/light.py).
        parts = load_parts(ref, options.language, notify)
        family = family_of(parts.config)
        if family.openvino:
            exported = ir_cache.exported_precision(parts.local_dir)
            precision = resolve_dtype(options.dtype, "cpu")
            if exported is not None and options.dtype == "auto":
                precision = openvino_backend.dtype_of(exported)
            try:
                backend: Backend
                if precision == "int8" and exported is None and choose_method(options) == "full":
                    backend = open_full_int8(parts, options, threads, notify)
                else:
                    backend = ir_cache.open_openvino(parts, options, precision, threads, notify)
            except ConversionError as exc:
                if options.backend == "openvino" or precision == "int8":
                    raise
                notify(f"{exc}; using the torch backend")
            else:
                return dataclasses.replace(parts, device="cpu", dtype=precision), backend
        elif options.backend == "openvino":
            raise ConfigError(
                f"the OpenVINO backend does not run {family.name} models; use --backend torch"
            )
        else:  # auto: the torch backend, without a notice (nothing went wrong)
            log.debug("%s models run on the torch backend", family.name)
    # Loaded before torch is imported: the native model's weight reads overlap the import.
    loaded = load_model(options, notify, ref=ref)
    from .torch_backend import TorchBackend  # deferred: imports torch (the OpenVINO path never)

    return loaded, TorchBackend(loaded, exact=exact, threads=threads)
