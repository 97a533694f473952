"""Which device and dtype a model runs on, decided in one place.

``resolve_device``: ``auto`` is CUDA when a GPU is usable, else the CPU; CUDA asked for
without a GPU is refused. ``resolve_dtype``: ``auto`` is float16 on CUDA and float32 on the
CPU (CPU half precision is slow). ``native_dtype``: whether the torch backend runs this
package's own wav2vec2 (``native.py``) and in which dtype.
"""

from __future__ import annotations

import os

from ..errors import ConfigError, ModelError
from ..options import ModelOptions

#: ``transformers`` makes the torch backend load transformers' model even where this
#: package's own copy (``native.py``) runs it; for comparisons and as a way out.
TORCH_MODEL_ENV = "W2V2_TORCH_MODEL"

#: The dtypes the torch backend runs (int8 is OpenVINO's).
TORCH_DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; CUDA without a GPU fails."""
    import torch  # deferred: the OpenVINO path never imports torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} was asked for but CUDA is not available here")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ModelError(
                f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA device(s))"
            )
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` → float16 on CUDA, float32 on CPU (CPU half precision is slow)."""
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    return dtype


def torch_dtype(options: ModelOptions, device: str) -> str:
    """The dtype the torch backend runs in on ``device``; int8 is refused (OpenVINO's)."""
    dtype = resolve_dtype(options.dtype, device)
    if dtype not in TORCH_DTYPES:
        raise ConfigError(f"--dtype {dtype} needs the OpenVINO backend (--backend openvino)")
    return dtype


def native_dtype(options: ModelOptions) -> str | None:
    """The dtype the native model (``native.py``) would run in for these options, or None
    when it is not to be used: ``W2V2_TORCH_MODEL=transformers``, a GPU asked for, a
    language adapter, or a dtype torch does not run."""
    choice = os.environ.get(TORCH_MODEL_ENV, "").strip().lower() or "auto"
    if choice not in ("auto", "transformers"):
        raise ConfigError(f"{TORCH_MODEL_ENV}={choice!r}: expected auto or transformers")
    if choice == "transformers" or options.device not in ("auto", "cpu") or options.language:
        return None
    dtype = resolve_dtype(options.dtype, "cpu")
    return dtype if dtype in TORCH_DTYPES else None
