"""Multilingual models with one vocabulary and one adapter per language (MMS).

``facebook/mms-1b-all`` and its kin are one wav2vec2 model with small per-language
adapters (``adapter.<code>.safetensors``: attention-adapter weights and a CTC head) and a
nested ``vocab.json`` (``{"eng": {...}, "fra": {...}, ...}``). ``--language CODE`` picks the
vocabulary (the tokenizer's ``target_lang``) and loads the adapter (``load_adapter``). A
nested vocabulary without ``--language``, an unknown code, and ``--language`` for a model
with a single vocabulary are refused in one line that says how to list the codes
(``w2v2 languages MODEL``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import ModelError
from . import hub
from .ref import CHECKPOINT, ModelRef

log = logging.getLogger("w2v2cli")

ADAPTER_FILES = ("adapter.{}.safetensors", "adapter.{}.bin")


def vocab_languages(vocab_json: Path | None) -> list[str] | None:
    """The language codes of a nested ``vocab.json``; None for a flat one (or none)."""
    if vocab_json is None:
        return None
    try:
        vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(vocab, dict) and vocab and all(isinstance(v, dict) for v in vocab.values()):
        return sorted(vocab)
    return None


def check_language(name: str, languages: list[str] | None, language: str | None) -> None:
    """One-line refusals for a language choice that cannot work (module docstring)."""
    listing = f"`w2v2 languages {name}` lists"
    if languages is None:
        if language is not None:
            raise ModelError(
                f"{name} has a single vocabulary; --language is for models with "
                "one vocabulary per language (MMS)"
            )
        return
    if language is None:
        raise ModelError(
            f"{name} has one vocabulary and adapter per language (MMS): choose "
            f"one with --language CODE; {listing} its {len(languages)} "
            "codes"
        )
    if language not in languages:
        raise ModelError(
            f"{name} has no language {language!r}; {listing} its {len(languages)} codes"
        )


def vocab_file(name_or_path: str, **kwargs: Any) -> Path | None:
    """The model's ``vocab.json`` on disk (downloaded alone for a hub id not yet cached)."""
    from transformers.utils import cached_file  # deferred: transformers is heavy

    try:
        path = cached_file(
            name_or_path, "vocab.json", _raise_exceptions_for_missing_entries=False, **kwargs
        )
    except Exception as exc:  # noqa: BLE001 - reported as "no tokenizer" by the caller
        log.debug("no vocab.json for %s: %s", name_or_path, exc)
        return None
    return Path(path) if path else None


def adapter_file(folder: Path, language: str) -> Path | None:
    """``folder``'s adapter weights for ``language``, if there."""
    for pattern in ADAPTER_FILES:
        path = folder / pattern.format(language)
        if path.is_file():
            return path
    return None


def fetch_adapter(
    repo_id: str, language: str, cache_dir: Path | None, revision: str | None
) -> None:
    """Download a hub model's adapter for ``language`` into the cache (a one-line
    ``ModelError`` when the hub cannot be reached or has none)."""
    from huggingface_hub import snapshot_download  # deferred: heavy, needed only to download

    reason = hub.unreachable_reason()
    if reason is not None:
        raise ModelError(
            f"the {language} adapter of {repo_id} is not in the Hugging Face cache "
            f"and cannot be downloaded ({reason})"
        )
    try:
        snapshot_download(
            repo_id,
            allow_patterns=[p.format(language) for p in ADAPTER_FILES],
            cache_dir=str(cache_dir) if cache_dir else None,
            revision=revision,
        )
    except Exception as exc:  # noqa: BLE001 - any download failure: one line
        text = " ".join(str(exc).split())[:200]
        raise ModelError(f"cannot download the {language} adapter of {repo_id}: {text}") from None


def load_language(model: Any, ref: ModelRef, language: str) -> None:
    """Load ``language``'s adapter weights and CTC head into ``model`` (in place); a hub
    model's adapter is fetched into the cache first when it is not there."""
    name = ref.name
    if ref.folder is not None and adapter_file(ref.folder, language) is None:
        if not ref.is_hub:
            raise ModelError(
                f"{name} has no adapter for {language} (adapter.{language}.safetensors)"
            )
        fetch_adapter(name, language, ref.cache_dir, ref.revision)
    if not hasattr(model, "load_adapter"):
        raise ModelError(f"{name} ({model.config.model_type}) cannot load language adapters")
    try:
        model.load_adapter(language, force_load=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign adapter file: one line
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelError(f"cannot load the {language} adapter of {name}: {text}") from None


def model_languages(ref: ModelRef) -> list[str]:
    """The language codes ``--language`` accepts for the model (``w2v2 languages``): only
    its ``vocab.json`` is read (downloaded alone for a hub id not yet cached)."""
    name = ref.name
    if ref.kind == CHECKPOINT:
        raise ModelError(f"{name} is a checkpoint file: it has a single vocabulary")
    if ref.is_model_file:
        raise ModelError(f"{name} is a model file: it has a single vocabulary")
    vocab = None
    if ref.folder is not None and (ref.folder / "vocab.json").is_file():
        vocab = ref.folder / "vocab.json"
    elif ref.is_hub:
        ref.check_reachable()
        hub.quiet_hub_logging()
        kwargs: dict[str, Any] = {"revision": ref.revision}
        if ref.cache_dir is not None:
            kwargs["cache_dir"] = str(ref.cache_dir)
        vocab = vocab_file(name, **kwargs)
    if vocab is None:
        raise ModelError(f"{name} has no vocab.json")
    languages = vocab_languages(vocab)
    if languages is None:
        raise ModelError(f"{name} has a single vocabulary (it takes no --language)")
    return languages
