"""The native model's weights (``native.py``): read from the folder, checked against the
model's parameters, without transformers.

- ``model.safetensors``: names and shapes are checked on the header before any data is
  read; the data is read with plain file reads (no torch: this runs in a thread while
  torch is imported) into one page-aligned buffer, each tensor at its offset in the file,
  as in transformers' memory map (``read_safetensors`` says why that matters);
- ``pytorch_model.bin``: ``torch.load`` with ``weights_only`` (no pickled code run);
- transformers' renaming of legacy weight-norm names (``weight_g``/``weight_v``) applied;
  a checkpoint maps one to one onto the model's parameters or is left to transformers.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .native import NativeConfig

log = logging.getLogger("w2v2cli")

#: Checkpoint keys transformers ignores for a CTC model (SpecAugment's learned vector).
IGNORED = ("wav2vec2.masked_spec_embed",)
_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_MAX_HEADER = 100_000_000  # bytes of a safetensors JSON header: more is not a real file


def expected_shapes(c: NativeConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of ``Wav2Vec2ForCTC`` (transformers' names) and its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    fe = "wav2vec2.feature_extractor.conv_layers"
    for i, (dim, kernel) in enumerate(zip(c.conv_dim, c.conv_kernel, strict=True)):
        in_dim = c.conv_dim[i - 1] if i else 1
        shapes[f"{fe}.{i}.conv.weight"] = (dim, in_dim, kernel)
        if c.conv_bias:
            shapes[f"{fe}.{i}.conv.bias"] = (dim,)
        if c.feat_extract_norm == "layer" or i == 0:
            shapes[f"{fe}.{i}.layer_norm.weight"] = (dim,)
            shapes[f"{fe}.{i}.layer_norm.bias"] = (dim,)
    h, last = c.hidden_size, c.conv_dim[-1]
    shapes["wav2vec2.feature_projection.layer_norm.weight"] = (last,)
    shapes["wav2vec2.feature_projection.layer_norm.bias"] = (last,)
    shapes["wav2vec2.feature_projection.projection.weight"] = (h, last)
    shapes["wav2vec2.feature_projection.projection.bias"] = (h,)
    pos = "wav2vec2.encoder.pos_conv_embed.conv"
    shapes[f"{pos}.parametrizations.weight.original0"] = (1, 1, c.num_conv_pos_embeddings)
    shapes[f"{pos}.parametrizations.weight.original1"] = (
        h,
        h // c.num_conv_pos_embedding_groups,
        c.num_conv_pos_embeddings,
    )
    shapes[f"{pos}.bias"] = (h,)
    shapes["wav2vec2.encoder.layer_norm.weight"] = (h,)
    shapes["wav2vec2.encoder.layer_norm.bias"] = (h,)
    for i in range(c.num_hidden_layers):
        p = f"wav2vec2.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}.attention.{proj}.weight"] = (h, h)
            shapes[f"{p}.attention.{proj}.bias"] = (h,)
        for norm in ("layer_norm", "final_layer_norm"):
            shapes[f"{p}.{norm}.weight"] = (h,)
            shapes[f"{p}.{norm}.bias"] = (h,)
        shapes[f"{p}.feed_forward.intermediate_dense.weight"] = (c.intermediate_size, h)
        shapes[f"{p}.feed_forward.intermediate_dense.bias"] = (c.intermediate_size,)
        shapes[f"{p}.feed_forward.output_dense.weight"] = (h, c.intermediate_size)
        shapes[f"{p}.feed_forward.output_dense.bias"] = (h,)
    shapes["lm_head.weight"] = (c.vocab_size, h)
    shapes["lm_head.bias"] = (c.vocab_size,)
    return shapes


def canonical(name: str) -> str:
    """transformers' legacy renaming of weight-norm parameters (``conversion_mapping``)."""
    if name.endswith(".weight_g"):
        return name[: -len(".weight_g")] + ".parametrizations.weight.original0"
    if name.endswith(".weight_v"):
        return name[: -len(".weight_v")] + ".parametrizations.weight.original1"
    return name


def read_safetensors(
    path: Path, expected: dict[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[Any, str]] | None:
    """The arrays of a ``.safetensors`` file with their stored dtype (``float32``,
    ``float16``, or ``bfloat16`` held as ``uint16``); None when the file is not one this
    reader knows, or when its names and shapes (transformers' renaming applied) are not
    ``expected``: checked on the header, before any data is read.

    The file is read with plain file reads (no torch: it can run while torch is being
    imported) into one page-aligned anonymous mapping, each array a view at its offset in
    the file: the same addresses modulo the page size as in the memory map transformers
    runs from. That matters: a matrix product with a single row (a 25-45 ms item, one
    output frame) rounds differently depending on its weight's alignment modulo 16 bytes,
    and a vocabulary size that is not a multiple of 4 shifts every later tensor of the file
    off that alignment.
    """
    import mmap

    import numpy as np

    arrays: dict[str, tuple[Any, str]] = {}
    holders = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > _MAX_HEADER:
                return None
            header = json.loads(f.read(size))
            start = 8 + size
            entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
            if expected is not None:
                shapes = {
                    canonical(k): tuple(int(d) for d in v["shape"])
                    for k, v in entries
                    if k not in IGNORED
                }
                ignored = {k: tuple(int(d) for d in v["shape"]) for k, v in entries if k in IGNORED}
                if not maps_one_to_one(shapes, len(entries) - len(ignored), ignored, expected):
                    log.debug("%s: weights do not map one to one onto Wav2Vec2ForCTC", path)
                    return None
            end = start + max((int(v["data_offsets"][1]) for _, v in entries), default=0)
            if end > os.fstat(f.fileno()).st_size:
                return None
            data = mmap.mmap(-1, max(end, 1))
            f.seek(0)
            view, done = memoryview(data), 0
            while done < end:
                n = f.readinto(view[done:end])
                if not n:
                    return None
                done += n
            view.release()
            for name, entry in entries:
                kind = _SAFETENSORS_DTYPES.get(entry.get("dtype"))
                if kind is None:
                    return None
                begin, stop = (int(o) for o in entry["data_offsets"])
                shape = tuple(int(d) for d in entry["shape"])
                holder = np.dtype(holders[kind])
                count = int(np.prod(shape, dtype=np.int64))
                if stop - begin != count * holder.itemsize:
                    return None
                array = (
                    np.frombuffer(data, holder, count, start + begin)
                    if count
                    else np.empty(0, holder)
                )
                arrays[name] = (array.reshape(shape), kind)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None
    return arrays


def to_tensors(arrays: dict[str, tuple[Any, str]], dtype: Any) -> dict[str, Any]:
    """``read_safetensors``' arrays as torch tensors in ``dtype`` (views where it is the
    stored dtype, so the buffer's alignment is kept)."""
    import torch

    tensors = {}
    for name, (array, kind) in arrays.items():
        tensor = torch.from_numpy(array)
        if kind == "bfloat16":
            tensor = tensor.view(torch.bfloat16)
        tensors[name] = tensor if tensor.dtype == dtype else tensor.to(dtype)
    return tensors


def checked(tensors: dict[str, Any], config: NativeConfig, where: Path) -> dict[str, Any] | None:
    """The model's parameters from a checkpoint's ``tensors`` (renamed as transformers
    does), or None when they do not map one to one (``maps_one_to_one``)."""
    weights = {canonical(k): v for k, v in tensors.items() if k not in IGNORED}
    ignored = {k: tuple(v.shape) for k, v in tensors.items() if k in IGNORED}
    shapes = {k: tuple(v.shape) for k, v in weights.items()}
    if not maps_one_to_one(shapes, len(tensors) - len(ignored), ignored, expected_shapes(config)):
        log.debug("%s: weights do not map one to one onto Wav2Vec2ForCTC", where)
        return None
    return weights


def maps_one_to_one(
    shapes: dict[str, tuple[int, ...]],
    names: int,
    ignored: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
) -> bool:
    """Whether a checkpoint's ``names`` tensors (renamed: ``shapes``) are exactly the
    model's parameters: no two names for one parameter (a legacy and a current one), none
    missing (transformers would initialise it at random), none extra; and what transformers
    ignores has the shape it would check (``masked_spec_embed``: one value per channel)."""
    hidden = expected["lm_head.weight"][1]
    return (
        len(shapes) == names
        and shapes == expected
        and all(shape == (hidden,) for shape in ignored.values())
    )


def read_bin(folder: Path, dtype: Any) -> dict[str, Any] | None:
    """``pytorch_model.bin``'s tensors in ``dtype`` (``weights_only``: no pickled code)."""
    import torch

    path = folder / "pytorch_model.bin"
    if not path.is_file() or (folder / "model.safetensors.index.json").is_file():
        return None  # sharded or absent (transformers prefers sharded safetensors to .bin)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers reports it with its message
        log.debug("cannot read %s: %s", path, exc)
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    return {k: v if v.dtype == dtype else v.to(dtype) for k, v in state.items()}
