"""Load and validate a CTC checkpoint once: ``ModelOptions`` in, ``LoadedModel`` out.

The only module that turns a model name into weights on a device. Every way a checkpoint
can be unusable ends in a one-line ``ModelError``: a missing folder, a config that is not
JSON, corrupt weights, no CTC head, no tokenizer, a tokenizer that does not fit the head,
a model that does not take raw audio, CUDA without a GPU, a hub id that is neither cached
nor reachable (see ``hub.py``). Remote code is never run (``trust_remote_code=False``).

A checkpoint *file* (NVIDIA DeepLearningExamples or fairseq ``.pt``) is converted once to
a model folder in the cache (``convert.converted_folder``) and loaded from there like any
folder; ``name`` stays the file the user gave.

Each call loads its own model object: two ``Transcriber``s never share (and never switch
exact batching for) one model, and a model is freed with its last user.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from ..options import ModelOptions
from ..records import Vocabulary
from . import hub
from .vocab import vocabulary_from_tokenizer

log = logging.getLogger("w2v2cli")

Notify = Callable[[str], None]


@dataclass
class LoadedModel:
    """A model's processor parts, vocabulary and (for the torch backend) weights.

    ``local_dir`` is the folder the files were read from (a user's folder, or the hub
    cache's snapshot of a hub id); ``is_hub`` says which: a hub id's own LM is looked up on
    the hub, a folder's in the folder. ``model`` is the transformers model on ``device``
    in ``dtype`` (names: ``"cpu"``, ``"float32"``), or None when another backend runs the
    model and the weights were never loaded.
    """

    name: str
    model: Any  # transformers PreTrainedModel or None (kept untyped: no torch import)
    feature_extractor: Any
    tokenizer: Any
    vocabulary: Vocabulary
    sampling_rate: int
    samples_per_frame: int
    device: str
    dtype: str
    wants_attention_mask: bool
    local_dir: Path | None
    is_hub: bool = False
    config: Any = None
    source: str = ""  # what from_pretrained reads: a folder, or the hub id to download

    def output_frames(self, num_samples: int) -> int:
        """Frames the model outputs for ``num_samples`` samples (0 when too short)."""
        return output_frames(self.config, num_samples)

    @property
    def frame_duration(self) -> float:
        return self.samples_per_frame / self.sampling_rate

    @property
    def padding_exact(self) -> bool:
        """Whether a padded batch gives every item its unbatched result (``families.py``);
        when not, only items of equal length share a model call."""
        from .families import family_of

        return family_of(self.config).padding_exact

    def find_lm_dir(
        self, cache_dir: Path | None = None, revision: str | None = None
    ) -> Path | None:
        """The model's own ``language_model/`` folder (Wav2Vec2ProcessorWithLM layout), or
        None. Called only when beam search could use it, so greedy runs never look."""
        return find_model_lm_dir(self.name, cache_dir, revision)


def is_local(name: str) -> bool:
    """A folder or checkpoint file (or a path-looking name) rather than a hub id."""
    return (
        os.path.isdir(name)
        or os.path.isfile(name)
        or name.startswith((".", "/", "~"))
        or os.sep + os.sep in name
    )


def find_model_lm_dir(
    name: str, cache_dir: Path | None = None, revision: str | None = None
) -> Path | None:
    """``language_model/`` of a model given by name: in the folder for a local model, from
    the cache or the hub for a hub id (see ``hub.model_lm_folder``)."""
    from ..lm import find_model_lm

    if is_local(name):
        folder = Path(name).expanduser()
        return find_model_lm(folder) if folder.is_dir() else None
    return hub.model_lm_folder(name, cache_dir, revision)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; CUDA without a GPU fails."""
    import torch

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


def output_frames(config: Any, num_samples: int) -> int:
    """The model's output length for ``num_samples`` samples, as transformers computes it
    (``families.output_frames``), without torch."""
    from .families import output_frames as family_frames

    return family_frames(config, num_samples)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _source(options: ModelOptions, notify: Notify | None = None) -> tuple[str, Path | None, bool]:
    """What to pass to ``from_pretrained``: a folder whenever possible (a user's folder,
    the cache's snapshot, or a checkpoint file's converted folder), the hub id only when it
    must be downloaded."""
    name = options.model
    if is_local(name):
        path = Path(name).expanduser()
        if path.is_file():
            from .convert import converted_folder

            folder = converted_folder(path, options.cache_dir, notify)
            return str(folder), folder, False
        if not path.is_dir():
            raise ModelError(f"model folder {name!r} does not exist")
        if not (path / "config.json").is_file():
            raise ModelError(f"{name!r} is not a model folder: it has no config.json")
        return str(path), path, False
    snapshot = hub.cached_snapshot(name, options.cache_dir, options.revision)
    if snapshot is not None:
        return str(snapshot), snapshot, True
    reason = hub.unreachable_reason()
    if reason is not None:
        raise ModelError(
            f"model {name!r} is not a local model folder and is not in the Hugging Face "
            f"cache, and it cannot be downloaded ({reason})"
        )
    return name, None, True


def register_families(folder: Path | None) -> None:
    """Make transformers' Auto classes know this package's own model types (the hourglass
    encoder) when ``folder``'s config names one; a no-op for every other model."""
    if folder is None:
        return
    try:
        import json

        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(
            "model_type"
        )
    except (OSError, ValueError, AttributeError):
        return
    from .checkpoints import HOURGLASS_MODEL_TYPE

    if model_type == HOURGLASS_MODEL_TYPE:
        from .hourglass import register

        register()


def load_processor(options: ModelOptions, notify: Notify | None = None) -> LoadedModel:
    """Everything but the weights: config, tokenizer, feature extractor, vocabulary.

    Enough for a backend that runs its own copy of the model (a cached OpenVINO IR); the
    ``model`` field is None. ``notify`` hears of a checkpoint file's first conversion.
    Raises ``ModelError`` with one line.
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoTokenizer

    hub.quiet_hub_logging()
    name = options.model
    name_or_path, local_dir, is_hub = _source(options, notify)
    register_families(local_dir)
    common = _load_kwargs(options, local_dir)
    try:
        config = AutoConfig.from_pretrained(name_or_path, **common)
    except Exception as exc:  # noqa: BLE001 - any loading failure is this model's fault
        raise ModelError(f"cannot load model {name!r}: {_first_line(exc)}") from None

    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForCTC") for a in archs):
        raise ModelError(
            f"{name!r} is a {archs[0]} checkpoint without a CTC head: it needs CTC fine-tuning "
            "before it can transcribe (use a fine-tuned model such as "
            "facebook/wav2vec2-base-960h)"
        )
    from .families import family_of

    family = family_of(config)
    if family.input == "waveform" and (
        not hasattr(config, "conv_kernel") or not hasattr(config, "conv_stride")
    ):
        raise ModelError(
            f"{name!r} is a {config.model_type} model, not a raw-audio CTC model with a "
            "convolutional front end (wav2vec2, HuBERT, WavLM, Data2Vec audio, XLS-R...) nor "
            "W2V-BERT"
        )
    from .languages import check_language, vocab_file, vocab_languages

    languages = vocab_languages(vocab_file(name_or_path, **common))
    check_language(name, languages, options.language)
    tokenizer_kwargs = dict(common)
    if options.language is not None:
        tokenizer_kwargs["target_lang"] = options.language
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **tokenizer_kwargs)
    except Exception as exc:  # noqa: BLE001 - reported as "no tokenizer" below
        log.debug("tokenizer load failed: %s", exc)
        tokenizer = None
    if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ModelError(
            f"{name!r} has no tokenizer (vocab.json): a CTC model needs one to turn outputs "
            "into text; pretrained-only checkpoints need CTC fine-tuning first"
        )
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **common)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"{name!r} has no usable feature extractor config: {_first_line(exc)}"
        ) from None
    feature_extractor = _with_normalize_eps(feature_extractor)
    # A language's adapter brings its own CTC head: its size is checked with the weights.
    vocab_size = None if options.language else getattr(config, "vocab_size", None)
    vocabulary = vocabulary_from_tokenizer(tokenizer, vocab_size)
    samples_per_frame = int(
        getattr(config, "inputs_to_logits_ratio", 0) or np.prod(config.conv_stride)
    )
    return LoadedModel(
        name=name,
        model=None,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        vocabulary=vocabulary,
        sampling_rate=int(getattr(feature_extractor, "sampling_rate", 16000)),
        samples_per_frame=samples_per_frame,
        device="cpu",
        dtype="float32",
        wants_attention_mask=bool(getattr(feature_extractor, "return_attention_mask", False)),
        local_dir=local_dir,
        is_hub=is_hub,
        config=config,
        source=name_or_path,
    )


def _with_normalize_eps(feature_extractor: Any) -> Any:
    """A converted fairseq/NVIDIA checkpoint normalises with its own epsilon (recorded in
    its ``preprocessor_config.json``, see ``convert.py``): the same normalisation, done by
    ``light.FeatureNormalizer``."""
    from .convert import NORMALIZE_EPS_KEY
    from .light import FeatureNormalizer

    eps = getattr(feature_extractor, NORMALIZE_EPS_KEY, None)
    if eps is None or getattr(feature_extractor, "feature_size", 1) != 1:
        return feature_extractor
    return FeatureNormalizer(
        sampling_rate=int(feature_extractor.sampling_rate),
        do_normalize=bool(feature_extractor.do_normalize),
        return_attention_mask=bool(feature_extractor.return_attention_mask),
        eps=float(eps),
    )


def load_processor_light(options: ModelOptions) -> LoadedModel | None:
    """``load_processor`` without transformers, for standard folders already on disk (see
    ``light.py``); None when the folder is not there or not in the common layout. A
    checkpoint file counts when its conversion is in the cache."""
    from .light import read_light

    name = options.model
    if options.language is not None:  # languages are checked and loaded by transformers
        return None
    if is_local(name):
        folder = Path(name).expanduser()
        is_hub = False
        if folder.is_file():
            from .convert import cached_conversion

            cached = cached_conversion(folder, options.cache_dir)
            if cached is None:
                return None
            folder = cached
        if not (folder / "config.json").is_file():
            return None
    else:
        cached = hub.cached_files(name, options.cache_dir, options.revision)
        if cached is None:
            return None
        folder, is_hub = cached, True
    light = read_light(folder)
    if light is None:
        return None
    config, vocabulary, normalizer = light
    if config.architectures and not any(a.endswith("ForCTC") for a in config.architectures):
        return None  # load_processor refuses it with the full message
    return LoadedModel(
        name=name,
        model=None,
        feature_extractor=normalizer,
        tokenizer=None,
        vocabulary=vocabulary,
        sampling_rate=normalizer.sampling_rate,
        samples_per_frame=int(np.prod(config.conv_stride)),
        device="cpu",
        dtype="float32",
        wants_attention_mask=normalizer.return_attention_mask,
        local_dir=folder,
        is_hub=is_hub,
        config=config,
        source=str(folder),
    )


def _load_kwargs(options: ModelOptions, local_dir: Path | None) -> dict[str, Any]:
    common: dict[str, Any] = {"trust_remote_code": False}
    if options.cache_dir is not None:
        common["cache_dir"] = str(options.cache_dir)
    if options.revision is not None and local_dir is None:
        common["revision"] = options.revision
    return common


def load_weights(
    parts: LoadedModel, options: ModelOptions, device: str = "cpu", dtype: str = "float32"
) -> Any:
    """The transformers CTC model of ``parts`` on ``device`` in ``dtype``, in eval mode."""
    import torch
    from transformers import AutoModelForCTC

    hub.quiet_hub_logging()
    name = parts.name
    register_families(parts.local_dir)
    common = _load_kwargs(options, parts.local_dir)
    try:
        model, info = AutoModelForCTC.from_pretrained(
            parts.source, dtype=getattr(torch, dtype), output_loading_info=True, **common
        )
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelError(
                f"{name!r} is a {parts.config.model_type} model, which has no CTC variant in "
                "transformers"
            ) from None
        raise ModelError(f"cannot load model {name!r}: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - corrupt weights raise library-specific errors
        raise ModelError(f"cannot load the weights of {name!r}: {_first_line(exc)}") from None
    if options.language is not None:
        from .languages import load_language

        load_language(
            model,
            name,
            parts.local_dir,
            parts.is_hub,
            options.language,
            options.cache_dir,
            options.revision,
        )
    missing = set(info.get("missing_keys", []))
    if any(k.startswith("lm_head") for k in missing):
        raise ModelError(
            f"{name!r} has no trained CTC head (lm_head weights are missing): it needs CTC "
            "fine-tuning before it can transcribe"
        )
    from .families import family_of

    expected = "input_features" if family_of(model.config).input == "fbank" else "input_values"
    if getattr(model, "main_input_name", "input_values") != expected:
        raise ModelError(
            f"{name!r} takes {model.main_input_name}, not {expected}; only raw-audio CTC models "
            "(wav2vec2, HuBERT, WavLM, Data2Vec audio, XLS-R...) and W2V-BERT are supported"
        )
    model.to(device)
    model.eval()
    return model


def load_model(options: ModelOptions, notify: Notify | None = None) -> LoadedModel:
    """Processor parts and the model on the options' device and dtype (the torch backend):
    this package's own copy of a standard wav2vec2 CTC model on the CPU (``native.py``:
    without transformers for folders in the common layout, ``load_native_model``; with
    transformers' processor for the others), transformers' model otherwise; raises
    ``ModelError`` with one line."""
    from .native_loading import load_native_model, with_native_weights

    native = load_native_model(options)
    if native is not None:
        return native
    parts = load_processor(options, notify)
    native = with_native_weights(parts, options)
    if native is not None:
        return native
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"--dtype {dtype} needs the OpenVINO backend (--backend openvino)")
    model = load_weights(parts, options, device, dtype)
    log.debug("loaded %s on %s as %s", parts.name, device, dtype)
    vocabulary = parts.vocabulary
    if options.language is not None:  # the adapter's head: check the vocabulary against it
        vocabulary = vocabulary_from_tokenizer(parts.tokenizer, model.config.vocab_size)
    return dataclasses.replace(
        parts, model=model, device=device, dtype=dtype, vocabulary=vocabulary
    )
