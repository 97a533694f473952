"""Loading the native model (``native.py``): a folder's weights into
``NativeWav2Vec2ForCTC``.

``loading.load_model`` decides when (``device.native_dtype``: on the CPU, unless
``W2V2_TORCH_MODEL=transformers``) and hands its parts here: ``start_loading`` checks the
config and starts reading the weights in a thread (so the read overlaps the import of
torch), ``with_native_model`` finishes and returns the parts with the model. Either returns
None, and transformers loads the model, whenever the native model would not be
transformers' exactly (``native.py``'s docstring lists when).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

from .loaded import LoadedModel
from .native import NativeConfig, NativeWav2Vec2ForCTC
from .native_weights import checked, expected_shapes, read_bin, read_safetensors, to_tensors

log = logging.getLogger("w2v2cli")


class Loading:
    """A native model being loaded: ``start_loading`` checks the config and starts reading
    ``model.safetensors`` in a thread (file reads release the GIL, so this overlaps the
    ~2.5 s import of torch); ``finish`` makes the model, or None."""

    def __init__(self, folder: Path, config: NativeConfig) -> None:
        self.folder, self.config = folder, config
        self._arrays: dict[str, tuple[Any, str]] | None = None
        self._thread: threading.Thread | None = None
        safetensors = folder / "model.safetensors"
        if safetensors.is_file():
            self._thread = threading.Thread(
                target=self._read, args=(safetensors,), name="w2v2-weights", daemon=True
            )
            self._thread.start()

    def _read(self, path: Path) -> None:
        self._arrays = read_safetensors(path, expected_shapes(self.config))

    def finish(self, dtype: str = "float32") -> NativeWav2Vec2ForCTC | None:
        import torch

        torch_dtype = getattr(torch, dtype)
        if self._thread is not None:
            self._thread.join()
            arrays, self._arrays = self._arrays, None
            tensors = None if arrays is None else to_tensors(arrays, torch_dtype)
            del arrays
        else:
            tensors = read_bin(self.folder, torch_dtype)
        weights = None if tensors is None else checked(tensors, self.config, self.folder)
        return None if weights is None else NativeWav2Vec2ForCTC(self.config, weights)


def native_config(folder: Path) -> NativeConfig | None:
    """The folder's config when it is a plain ``Wav2Vec2ForCTC`` this module runs."""
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return NativeConfig.from_raw(raw) if isinstance(raw, dict) else None


def start_loading(folder: Path) -> Loading | None:
    """Start loading the folder's model (``Loading``), or None when its config is not one
    this module runs; call before importing torch to overlap the two."""
    config = native_config(folder)
    return None if config is None else Loading(folder, config)


def load_native(folder: Path, dtype: str = "float32") -> NativeWav2Vec2ForCTC | None:
    """The folder's model as ``NativeWav2Vec2ForCTC`` in ``dtype``, or None when it is not
    one this module runs exactly as transformers does (module docstring)."""
    loading = start_loading(folder)
    return None if loading is None else loading.finish(dtype)


def with_native_model(
    parts: LoadedModel, dtype: str, loading: Loading | None = None
) -> LoadedModel | None:
    """``parts`` with this package's own model (``native.py``) on the CPU in ``dtype``, or
    None when the folder does not hold a model it runs exactly as transformers does (module
    docstring). ``loading`` is a load already started (``start_loading``) for the folder."""
    if loading is None:
        loading = None if parts.local_dir is None else start_loading(parts.local_dir)
    if loading is None:
        return None
    model = loading.finish(dtype)
    if model is None:
        return None
    log.debug("loaded %s on cpu as %s without transformers' model", parts.name, dtype)
    return dataclasses.replace(parts, model=model, device="cpu", dtype=dtype)
