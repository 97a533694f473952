"""Load and validate a CTC model once: a ``ModelRef`` (``ref.py``) in, ``LoadedModel`` out.

The loaders, each taking the ref that ``-m`` was resolved to once:

- ``load_parts``: the processor parts a backend needs besides its own copy of the model
  (an OpenVINO IR): read without transformers for standard folders (``light.py``), through
  transformers (``load_processor``) otherwise;
- ``load_model``: the parts and the torch model on the options' device and dtype: this
  package's own wav2vec2 on the CPU where it runs the model exactly (``native_loading.py``),
  transformers' model otherwise (``load_weights``);
- ``load_vocabulary``: a model's ``Vocabulary`` from its tokenizer alone (``lm build``).

Every way a checkpoint can be unusable ends in a one-line ``ModelError``: a config that is
not JSON, corrupt weights, no CTC head, no tokenizer, a tokenizer that does not fit the
head, a model that does not take raw audio, CUDA without a GPU, a hub id that is neither
cached nor reachable. Remote code is never run (``trust_remote_code=False``).

Each call loads its own model object: two ``Transcriber``s never share (and never switch
exact batching for) one model, and a model is freed with its last user.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

from ..errors import ModelError
from ..options import ModelOptions
from ..records import Vocabulary
from . import hub
from .checkpoints import HOURGLASS_MODEL_TYPE
from .convert import NORMALIZE_EPS_KEY
from .device import native_dtype, resolve_device, torch_dtype
from .families import GRANITE_SPEECH5_CTC, audio_config, family_of, samples_per_frame
from .languages import check_language, load_language, vocab_file, vocab_languages
from .light import FeatureNormalizer, load_processor_light, model_file_vocabulary
from .loaded import LoadedModel
from .native_loading import start_loading, with_native_model
from .ref import ModelRef, converted, model_ref
from .vocab import vocabulary_from_tokenizer

log = logging.getLogger("w2v2cli")

Notify = Callable[[str], None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def register_families(ref: ModelRef) -> None:
    """Make transformers' Auto classes know this package's own model types (the hourglass
    encoder) when the model's config names one; a no-op for every other model."""
    if ref.folder is None:
        return
    try:
        config = json.loads((ref.folder / "config.json").read_text(encoding="utf-8"))
        model_type = config.get("model_type")
    except (OSError, ValueError, AttributeError):
        return
    if model_type == HOURGLASS_MODEL_TYPE:
        from .hourglass import register  # deferred: imports torch and transformers' modeling

        register()


def blank_id(config: Any) -> int | None:
    """The blank the model's config names (``blank_token_id``: Omnilingual ASR's ``<s>``),
    or None (the tokenizer's pad token is the blank). ``config`` is a transformers config,
    a ``config.json``'s dict, or None."""
    value = config.get("blank_token_id") if isinstance(config, dict) else None
    if config is not None and not isinstance(config, dict):
        value = getattr(config, "blank_token_id", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def granite_refusal(name: str) -> str:
    """Why a Granite Speech 5 CTC model does not run: its feature extractor needs
    torchaudio, which has no release for the torch this tool runs with."""
    return (
        f"{name!r} is a Granite Speech 5 CTC model: its feature extractor needs torchaudio, "
        "which has no release for this version of torch, so w2v2 cannot run it"
    )


def load_processor(
    ref: ModelRef, language: str | None = None, notify: Notify | None = None
) -> LoadedModel:
    """Everything but the weights, through transformers: config, tokenizer, feature
    extractor, vocabulary; the ``model`` field is None. ``notify`` hears of a checkpoint
    file's first conversion. Raises ``ModelError`` with one line."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoTokenizer  # deferred: heavy

    ref = converted(ref, notify)
    ref.check_downloadable()
    hub.quiet_hub_logging()
    name = ref.name
    register_families(ref)
    common = ref.load_kwargs()
    try:
        config = AutoConfig.from_pretrained(ref.pretrained, **common)
    except Exception as exc:  # noqa: BLE001 - any loading failure is this model's fault
        raise ModelError(f"cannot load model {name!r}: {_first_line(exc)}") from None

    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForCTC") for a in archs):
        raise ModelError(
            f"{name!r} is a {archs[0]} checkpoint without a CTC head: it needs CTC fine-tuning "
            "before it can transcribe (use a fine-tuned model such as "
            "facebook/wav2vec2-base-960h)"
        )
    family = family_of(config)
    if family.model_type == GRANITE_SPEECH5_CTC:
        raise ModelError(granite_refusal(name))
    front = audio_config(config)
    if family.input == "waveform" and (
        not hasattr(front, "conv_kernel") or not hasattr(front, "conv_stride")
    ):
        raise ModelError(
            f"{name!r} is a {config.model_type} model, not a raw-audio CTC model with a "
            "convolutional front end (wav2vec2, HuBERT, WavLM, Data2Vec audio, XLS-R, "
            "Omnilingual ASR...) nor a log-mel model w2v2 knows (W2V-BERT, Parakeet CTC, "
            "LASR/MedASR)"
        )
    languages = vocab_languages(vocab_file(ref.pretrained, **common))
    check_language(name, languages, language)
    tokenizer_kwargs = dict(common)
    if language is not None:
        tokenizer_kwargs["target_lang"] = language
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.pretrained, **tokenizer_kwargs)
    except Exception as exc:  # noqa: BLE001 - reported as "no tokenizer" below
        log.debug("tokenizer load failed: %s", exc)
        tokenizer = None
    if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ModelError(
            f"{name!r} has no tokenizer (vocab.json): a CTC model needs one to turn outputs "
            "into text; pretrained-only checkpoints need CTC fine-tuning first"
        )
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(ref.pretrained, **common)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"{name!r} has no usable feature extractor config: {_first_line(exc)}"
        ) from None
    feature_extractor = _with_normalize_eps(feature_extractor)
    # A language's adapter brings its own CTC head: its size is checked with the weights.
    vocab_size = None if language else getattr(config, "vocab_size", None)
    vocabulary = vocabulary_from_tokenizer(tokenizer, vocab_size, blank_id(config))
    return LoadedModel(
        ref=ref,
        model=None,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        vocabulary=vocabulary,
        sampling_rate=int(getattr(feature_extractor, "sampling_rate", 16000)),
        samples_per_frame=samples_per_frame(config, feature_extractor),
        device="cpu",
        dtype="float32",
        wants_attention_mask=bool(getattr(feature_extractor, "return_attention_mask", False)),
        config=config,
    )


def _with_normalize_eps(feature_extractor: Any) -> Any:
    """A converted fairseq/NVIDIA checkpoint normalises with its own epsilon (recorded in
    its ``preprocessor_config.json``, see ``convert.py``): the same normalisation, done by
    ``light.FeatureNormalizer``."""
    eps = getattr(feature_extractor, NORMALIZE_EPS_KEY, None)
    if eps is None or getattr(feature_extractor, "feature_size", 1) != 1:
        return feature_extractor
    return FeatureNormalizer(
        sampling_rate=int(feature_extractor.sampling_rate),
        do_normalize=bool(feature_extractor.do_normalize),
        return_attention_mask=bool(feature_extractor.return_attention_mask),
        eps=float(eps),
    )


def load_parts(
    ref: ModelRef, language: str | None = None, notify: Notify | None = None
) -> LoadedModel:
    """The processor parts without the weights: read without transformers (so without
    torch) for a standard folder on disk (``light.py``), through transformers otherwise."""
    ref = converted(ref, notify)
    return load_processor_light(ref, language) or load_processor(ref, language, notify)


def load_weights(
    parts: LoadedModel, options: ModelOptions, device: str = "cpu", dtype: str = "float32"
) -> Any:
    """The transformers CTC model of ``parts`` on ``device`` in ``dtype``, in eval mode
    (downloading the weights of a hub id when they are not cached)."""
    import torch  # deferred: heavy, and the OpenVINO path never needs it
    from transformers import AutoModelForCTC

    ref = parts.ref
    ref.check_downloadable()
    hub.quiet_hub_logging()
    name = ref.name
    register_families(ref)
    try:
        model, info = AutoModelForCTC.from_pretrained(
            ref.pretrained,
            dtype=getattr(torch, dtype),
            output_loading_info=True,
            **ref.load_kwargs(),
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
        load_language(model, ref, options.language)
    missing = set(info.get("missing_keys", []))
    if any(k.startswith("lm_head") for k in missing):
        raise ModelError(
            f"{name!r} has no trained CTC head (lm_head weights are missing): it needs CTC "
            "fine-tuning before it can transcribe"
        )
    expected = family_of(model.config).input_name
    if getattr(model, "main_input_name", "input_values") != expected:
        raise ModelError(
            f"{name!r} takes {model.main_input_name}, not {expected}; only raw-audio CTC models "
            "(wav2vec2, HuBERT, WavLM, Data2Vec audio, XLS-R, Omnilingual ASR...) and the "
            "log-mel models w2v2 knows (W2V-BERT, Parakeet CTC, LASR/MedASR) are supported"
        )
    model.to(device)
    model.eval()
    return model


def load_model(
    options: ModelOptions, notify: Notify | None = None, *, ref: ModelRef | None = None
) -> LoadedModel:
    """Processor parts and the model on the options' device and dtype (the torch backend);
    ``ref`` is ``options.model`` resolved (``ref.resolve_model``; resolved here when not
    given). This package's own copy of a standard wav2vec2 CTC model on the CPU
    (``native.py``; for folders in the common layout without importing transformers at
    all), transformers' model otherwise. Raises ``ModelError`` with one line."""
    ref = model_ref(options, notify) if ref is None else converted(ref, notify)
    dtype = native_dtype(options)
    light = None if dtype is None else load_processor_light(ref, options.language)
    if light is not None:  # a standard folder: transformers is not imported at all
        # The weights are read in a thread while torch is imported (resolve_device).
        loading = start_loading(light.local_dir) if light.local_dir is not None else None
        if loading is not None and resolve_device(options.device) == "cpu":
            native = with_native_model(light, dtype, loading)  # type: ignore[arg-type]
            if native is not None:
                return native
    parts = load_processor(ref, options.language, notify)
    if dtype is not None and light is None and resolve_device(options.device) == "cpu":
        native = with_native_model(parts, dtype)  # transformers' processor, our model
        if native is not None:
            return native
    device = resolve_device(options.device)
    dtype = torch_dtype(options, device)
    model = load_weights(parts, options, device, dtype)
    log.debug("loaded %s on %s as %s", parts.name, device, dtype)
    vocabulary = parts.vocabulary
    if options.language is not None:  # the adapter's head: check the vocabulary against it
        vocabulary = vocabulary_from_tokenizer(
            parts.tokenizer, model.config.vocab_size, blank_id(model.config)
        )
    return dataclasses.replace(
        parts, model=model, device=device, dtype=dtype, vocabulary=vocabulary
    )


def load_vocabulary(ref: ModelRef, language: str | None = None) -> Vocabulary:
    """A model's ``Vocabulary`` from its tokenizer alone: no weights are loaded (``lm
    build --model``). ``language`` picks one of an MMS model's vocabularies."""
    if ref.is_model_file:  # an OpenVINO IR or ONNX file: the card's alphabet or its vocab.json
        check_language(ref.name, None, language)
        return model_file_vocabulary(ref)[0]
    from transformers import AutoTokenizer  # deferred: heavy

    ref = converted(ref)
    ref.check_downloadable()
    hub.quiet_hub_logging()
    check_language(
        ref.name, vocab_languages(vocab_file(ref.pretrained, **ref.load_kwargs())), language
    )
    kwargs = ref.load_kwargs()
    if language:
        kwargs["target_lang"] = language
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.pretrained, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loading failure is this model's fault
        raise ModelError(f"cannot load the tokenizer of {ref.name}: {_first_line(exc)}") from None
    if not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ModelError(f"{ref.name} has no CTC tokenizer (vocab.json)")
    config = None
    if ref.folder is not None:
        try:
            config = json.loads((ref.folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
    return vocabulary_from_tokenizer(tokenizer, blank_id=blank_id(config))
