"""Load a CTC model once and run batches of chunks through it.

The only module that knows about devices, dtypes, padding and attention masks. It turns
``Chunk``s into per-chunk log-probabilities holding exactly the frames each chunk's real
samples produce; it never decodes text.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .exact import set_batch_exact
from .options import ModelOptions
from .records import Chunk, Vocabulary
from .vocab import vocabulary_from_tokenizer

log = logging.getLogger("w2v2cli")

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


@dataclass
class LoadedModel:
    """A model with everything needed around it, loaded once per run."""

    name: str
    model: Any  # transformers PreTrainedModel (kept untyped: no torch import for callers)
    feature_extractor: Any
    tokenizer: Any
    vocabulary: Vocabulary
    sampling_rate: int
    samples_per_frame: int
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    wants_attention_mask: bool
    local_dir: Path | None

    @property
    def frame_duration(self) -> float:
        return self.samples_per_frame / self.sampling_rate

    def find_lm_dir(
        self, cache_dir: Path | None = None, revision: str | None = None
    ) -> Path | None:
        """The model's own ``language_model/`` folder (Wav2Vec2ProcessorWithLM layout).

        For a local folder, looked up in it; for a hub id, the repo's ``language_model/``
        files are fetched into the cache (or found there offline). Called only when beam
        search could use it, so greedy runs never touch the network for it.
        """
        from .lm import LM_FOLDER, find_model_lm

        if self.local_dir is not None:
            return find_model_lm(self.local_dir)
        try:
            from huggingface_hub import snapshot_download

            snapshot = snapshot_download(
                self.name,
                allow_patterns=[f"{LM_FOLDER}/*"],
                cache_dir=str(cache_dir) if cache_dir else None,
                revision=revision,
            )
        except Exception as exc:  # offline, no such repo, no permission: no model LM
            log.debug("no language_model/ for %s: %s", self.name, exc)
            return None
        return find_model_lm(Path(snapshot))


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


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` → float16 on CUDA, float32 on CPU (CPU half precision is slow)."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, _DTYPES[dtype])


def _is_local(name: str) -> bool:
    return os.path.isdir(name) or name.startswith((".", "/", "~")) or os.sep + os.sep in name


def _load_error(name: str, exc: Exception) -> ModelError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return ModelError(
            f"model {name!r} is not a local model folder and is not in the Hugging Face cache "
            f"(HF_HUB_OFFLINE=1): {text}"
        )
    return ModelError(f"cannot load model {name!r}: {text}")


def load_model(options: ModelOptions) -> LoadedModel:
    """Load processor parts and the CTC model; cached, so a run loads it once."""
    return _load_model_cached(options)


@functools.lru_cache(maxsize=2)
def _load_model_cached(options: ModelOptions) -> LoadedModel:
    import torch
    import transformers
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

    name = options.model
    local_dir: Path | None = None
    if _is_local(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelError(f"model folder {name!r} does not exist")
        if not (path / "config.json").is_file():
            raise ModelError(f"{name!r} is not a model folder: it has no config.json")
        local_dir = path
        name_or_path: str = str(path)
    else:
        name_or_path = name
    common: dict[str, Any] = {"trust_remote_code": False}
    if options.cache_dir is not None:
        common["cache_dir"] = str(options.cache_dir)
    if options.revision is not None:
        common["revision"] = options.revision

    try:
        config = AutoConfig.from_pretrained(name_or_path, **common)
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from None

    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForCTC") for a in archs):
        raise ModelError(
            f"{name!r} is a {archs[0]} checkpoint without a CTC head: it needs CTC fine-tuning "
            "before it can transcribe (use a fine-tuned model such as "
            "facebook/wav2vec2-base-960h)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **common)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.debug("tokenizer load failed: %s", exc)
        tokenizer = None
    if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ModelError(
            f"{name!r} has no tokenizer (vocab.json): a CTC model needs one to turn outputs "
            "into text; pretrained-only checkpoints need CTC fine-tuning first"
        )
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **common)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{name!r} has no usable feature extractor config: {exc}") from None

    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    try:
        model, info = AutoModelForCTC.from_pretrained(
            name_or_path, dtype=dtype, output_loading_info=True, **common
        )
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelError(
                f"{name!r} is a {config.model_type} model, which has no CTC variant in transformers"
            ) from None
        raise _load_error(name, exc) from None
    except OSError as exc:
        raise _load_error(name, exc) from None
    missing = set(info.get("missing_keys", []))
    if any(k.startswith("lm_head") for k in missing):
        raise ModelError(
            f"{name!r} has no trained CTC head (lm_head weights are missing): it needs CTC "
            "fine-tuning before it can transcribe"
        )
    if getattr(model, "main_input_name", "input_values") != "input_values":
        raise ModelError(
            f"{name!r} takes {model.main_input_name}, not raw audio; only raw-audio CTC models "
            "(wav2vec2, HuBERT, WavLM, Data2Vec audio, XLS-R...) are supported"
        )
    model.to(device)
    model.eval()
    vocabulary = vocabulary_from_tokenizer(tokenizer, getattr(config, "vocab_size", None))
    samples_per_frame = int(
        getattr(config, "inputs_to_logits_ratio", 0) or np.prod(config.conv_stride)
    )
    sampling_rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    wants_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
    log.debug("loaded %s on %s as %s", name, device, dtype)
    return LoadedModel(
        name=name,
        model=model,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        vocabulary=vocabulary,
        sampling_rate=sampling_rate,
        samples_per_frame=samples_per_frame,
        device=torch.device(device),
        dtype=dtype,
        wants_attention_mask=wants_mask,
        local_dir=local_dir,
    )


class Runner:
    """Runs batches of chunks; one per run, around a ``LoadedModel``.

    ``exact=True`` (the default) makes results independent of batching: each item runs
    through the convolutional feature encoder on its own (``exact.py``) and every model gets
    an attention mask from the true lengths. ``exact=False`` is plain padding: the encoder
    sees the padded batch, and a mask is passed only when the feature extractor asks for
    one (kept for benchmarks). The transformers 5 pipeline always passes a mask, so its
    batch dependence comes from the group norm seeing the padding alone.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        exact: bool = True,
        max_padding: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.exact = exact
        self.patched = set_batch_exact(loaded.model, exact)
        self.use_mask = exact or loaded.wants_attention_mask
        # How much padding a chunk may bring into a batch (see chunking.plan_batches). On
        # CPU a batch is no faster than its items one by one (benchmarks/RESULTS.md), so
        # only chunks of equal length share one; on CUDA batching is the speed.
        on_cuda = loaded.device.type == "cuda"
        if max_padding is None:
            max_padding = 1.0 if on_cuda else 0.0
        self.max_padding = max_padding
        self.batch_size = batch_size or (8 if on_cuda else 1)

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The feature extractor on one chunk alone (its normalisation is per chunk)."""
        fe = self.loaded.feature_extractor
        out = fe(samples, sampling_rate=self.loaded.sampling_rate, return_tensors="np")
        return np.asarray(out["input_values"][0], dtype=np.float32)

    def frames_for(self, num_samples: Sequence[int]) -> list[int]:
        import torch

        lengths = self.loaded.model._get_feat_extract_output_lengths(
            torch.tensor(list(num_samples), dtype=torch.long)
        )
        return [int(n) for n in lengths.tolist()]

    def run(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Log-probabilities ``(frames, vocab)`` for each chunk, padding frames removed."""
        import torch

        if not chunks:
            return []
        feats = [self.features(c.samples) for c in chunks]
        lengths = [f.shape[0] for f in feats]
        width = max(lengths)
        batch = np.zeros((len(feats), width), dtype=np.float32)
        for i, f in enumerate(feats):
            batch[i, : f.shape[0]] = f
        model = self.loaded.model
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.loaded.device, self.loaded.dtype)
            kwargs: dict[str, Any] = {}
            if self.use_mask:
                mask = torch.from_numpy(np.arange(width)[None, :] < np.array(lengths)[:, None])
                kwargs["attention_mask"] = mask.to(self.loaded.device, torch.long)
            logits = model(inputs, **kwargs).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        frames = self.frames_for(lengths)
        return [log_probs[i, : frames[i]] for i in range(len(chunks))]
