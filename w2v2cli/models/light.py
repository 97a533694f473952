"""Reading a standard wav2vec2 CTC folder without transformers (and so without torch).

transformers' config, tokenizer and feature-extractor classes import torch when it is
installed (about 2.5 s and 200 MB at start-up). A backend that runs its own copy of the
model (a cached or exported OpenVINO IR) needs only three small facts from those files:
the convolution strides and kernels (frame arithmetic), the id → token table with its
blank, word delimiter and special tokens (``Vocabulary``), and the feature normalisation.
This module reads them from the JSON files directly, for the common layout only:

- ``config.json`` of a wav2vec2-family model (``conv_kernel``, ``conv_stride``, ...);
- ``vocab.json`` (a flat token → id table) with ``tokenizer_config.json`` naming
  ``Wav2Vec2CTCTokenizer`` (or no class), no ``target_lang`` (MMS adapters), no
  ``added_tokens.json``;
- ``preprocessor_config.json`` (or ``processor_config.json``'s ``feature_extractor``) of a
  ``Wav2Vec2FeatureExtractor``.

Anything else returns None and the caller uses transformers, so an unusual checkpoint
never gets a subtly different reading. Tests check that both readings agree.

A model file (an OpenVINO IR or ONNX file, ``ir_file.py``) has none of these files: its
parts are the wav2vec2-base card's, or the ``vocab.json`` beside it (``load_model_file``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..records import Vocabulary
from . import ir_file
from .loaded import LoadedModel
from .ref import ModelRef
from .vocab import vocabulary_from_table

_SPECIAL_ATTRS = ("pad_token", "bos_token", "eos_token", "unk_token")


@dataclass(frozen=True)
class LightConfig:
    """The part of a model config the frame arithmetic needs (``loading.output_frames``)."""

    model_type: str
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    vocab_size: int | None = None
    add_adapter: bool = False
    num_adapter_layers: int = 0
    adapter_stride: int = 2
    architectures: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class FeatureNormalizer:
    """``Wav2Vec2FeatureExtractor`` for one unpadded input: zero mean and unit variance
    (``do_normalize``), the same expression, so the same float32 values. ``eps`` is
    transformers' 1e-7, or what a converted fairseq/NVIDIA checkpoint records
    (``w2v2cli_normalize_eps``: their ``F.layer_norm`` uses 1e-5)."""

    sampling_rate: int = 16000
    do_normalize: bool = True
    return_attention_mask: bool = False
    eps: float = 1e-7

    def __call__(
        self,
        samples: np.ndarray,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
    ) -> dict[str, list[np.ndarray]]:
        x = np.asarray(samples, dtype=np.float32)
        if self.do_normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + self.eps)
        return {"input_values": [x]}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _token(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def read_config(folder: Path) -> LightConfig | None:
    raw = _read(folder / "config.json")
    if raw is None or "conv_kernel" not in raw or "conv_stride" not in raw:
        return None
    return LightConfig(
        model_type=str(raw.get("model_type", "")),
        conv_kernel=tuple(int(k) for k in raw["conv_kernel"]),
        conv_stride=tuple(int(s) for s in raw["conv_stride"]),
        vocab_size=raw.get("vocab_size"),
        add_adapter=bool(raw.get("add_adapter", False)),
        num_adapter_layers=int(raw.get("num_adapter_layers", 0) or 0),
        adapter_stride=int(raw.get("adapter_stride", 2) or 2),
        architectures=tuple(raw.get("architectures") or ()),
        raw=raw,
    )


def read_vocabulary(folder: Path, vocab_size: int | None) -> Vocabulary | None:
    """The ``Vocabulary`` transformers' tokenizer gives (``vocab.vocabulary_from_tokenizer``)."""
    config = _read(folder / "tokenizer_config.json")
    vocab = _read(folder / "vocab.json")
    if config is None or vocab is None or (folder / "added_tokens.json").exists():
        return None
    if config.get("tokenizer_class") not in (None, "Wav2Vec2CTCTokenizer"):
        return None
    if config.get("target_lang") or not all(isinstance(i, int) for i in vocab.values()):
        return None
    ids = {int(i): str(t) for t, i in vocab.items()}
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        token = _token(entry)
        if token is None:
            return None
        if ids.get(int(key), token) != token:
            return None  # an added token that shadows the vocabulary: let transformers decide
        ids[int(key)] = token
    if sorted(ids) != list(range(len(ids))):
        return None
    tokens = [ids[i] for i in range(len(ids))]
    by_token = {t: i for i, t in enumerate(tokens)}
    special_map = _read(folder / "special_tokens_map.json") or {}
    named = {a: _token(special_map.get(a, config.get(a))) for a in _SPECIAL_ATTRS}
    specials = {by_token[t] for t in named.values() if t is not None and t in by_token}
    for extra in (
        config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
    ):
        token = _token(extra)
        if token in by_token:
            specials.add(by_token[token])
    for key, entry in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(entry, dict) and entry.get("special"):
            specials.add(int(key))
    pad = named["pad_token"]
    if pad is None or pad not in by_token:
        return None
    delimiter = _token(config.get("word_delimiter_token", "|"))
    return vocabulary_from_table(tokens, by_token[pad], delimiter, specials, vocab_size)


def read_feature_normalizer(folder: Path) -> FeatureNormalizer | None:
    fe = _read(folder / "preprocessor_config.json")
    if fe is None:
        processor = _read(folder / "processor_config.json") or {}
        fe = processor.get("feature_extractor") if isinstance(processor, dict) else None
    if not isinstance(fe, dict) or fe.get("feature_extractor_type") != "Wav2Vec2FeatureExtractor":
        return None
    if int(fe.get("feature_size", 1)) != 1:
        return None
    return FeatureNormalizer(
        sampling_rate=int(fe.get("sampling_rate", 16000)),
        do_normalize=bool(fe.get("do_normalize", True)),
        return_attention_mask=bool(fe.get("return_attention_mask", False)),
        eps=float(fe.get("w2v2cli_normalize_eps", 1e-7)),
    )


def read_light(folder: Path) -> tuple[LightConfig, Vocabulary, FeatureNormalizer] | None:
    """All three, or None when any file is outside the common layout."""
    config = read_config(folder)
    if config is None:
        return None
    vocabulary = read_vocabulary(folder, config.vocab_size)
    normalizer = read_feature_normalizer(folder)
    if vocabulary is None or normalizer is None:
        return None
    return config, vocabulary, normalizer


def load_processor_light(ref: ModelRef, language: str | None = None) -> LoadedModel | None:
    """``loading.load_processor`` without transformers, for a standard folder already on disk
    (a user's folder, a checkpoint's cached conversion, a hub id's cached snapshot); None when
    there is no folder yet or it is not in the common layout (module docstring), and for
    ``--language`` (languages are checked and loaded by transformers). A model file (an
    OpenVINO IR or ONNX file) gets the parts ``load_model_file`` reads."""
    if ref.is_model_file:
        return load_model_file(ref, language)
    if language is not None or ref.folder is None:
        return None
    light = read_light(ref.folder)
    if light is None:
        return None
    config, vocabulary, normalizer = light
    if config.architectures and not any(a.endswith("ForCTC") for a in config.architectures):
        return None  # load_processor refuses it with the full message
    return _parts(ref, config, vocabulary, normalizer, normalizer.return_attention_mask)


def _parts(
    ref: ModelRef,
    config: LightConfig,
    vocabulary: Vocabulary,
    normalizer: FeatureNormalizer,
    wants_attention_mask: bool,
) -> LoadedModel:
    """A ``LoadedModel`` without weights (another backend runs the model), on the CPU."""
    return LoadedModel(
        ref=ref,
        model=None,
        feature_extractor=normalizer,
        tokenizer=None,
        vocabulary=vocabulary,
        sampling_rate=normalizer.sampling_rate,
        samples_per_frame=int(np.prod(config.conv_stride)),
        device="cpu",
        dtype="float32",
        wants_attention_mask=wants_attention_mask,
        config=config,
    )


def model_file_vocabulary(ref: ModelRef) -> tuple[Vocabulary, Path | None]:
    """The alphabet of a model file (``ir_file.py``) and the ``vocab.json`` it was read
    from: one beside the file (read as a tokenizer folder's where a tokenizer config lies
    beside it too, else as a bare token table), else the wav2vec2-base card's (None)."""
    assert ref.path is not None
    vocab = ref.path.parent / "vocab.json"
    if not vocab.is_file():
        return ir_file.card_vocabulary(), None
    beside = None
    if (ref.path.parent / "tokenizer_config.json").is_file():
        beside = read_vocabulary(ref.path.parent, None)
    return beside or ir_file.vocabulary_beside(vocab), vocab


def load_model_file(ref: ModelRef, language: str | None = None) -> LoadedModel:
    """The parts of a model file (an OpenVINO IR or ONNX file, ``ir_file.py``): the card's
    alphabet or the ``vocab.json`` beside it, wav2vec2-base's normalisation (or that of a
    ``preprocessor_config.json`` beside it) and frame geometry. The network itself is
    checked against them when the OpenVINO backend opens it (its output size, its frame
    counts)."""
    if language is not None:
        raise ModelError(f"{ref.name} has a single vocabulary (it takes no --language)")
    vocabulary, _ = model_file_vocabulary(ref)
    config = LightConfig(
        model_type=ir_file.MODEL_TYPE,
        conv_kernel=ir_file.CONV_KERNEL,
        conv_stride=ir_file.CONV_STRIDE,
        vocab_size=vocabulary.size,
    )
    beside = read_feature_normalizer(ref.path.parent) if ref.path is not None else None
    normalizer = beside or FeatureNormalizer(sampling_rate=ir_file.SAMPLING_RATE)
    return _parts(ref, config, vocabulary, normalizer, False)
