"""``language_model/`` folders and their ``attrs.json``: the layout pyctcdecode's
``BeamSearchDecoderCTC.load_from_dir`` and transformers' ``Wav2Vec2ProcessorWithLM`` read.

A model folder holds ``alphabet.json`` and ``language_model/{attrs.json, unigrams.txt,
<kenlm file>}``. ``attrs.json`` carries the beam-search weights (``alpha``, ``beta``,
``unk_score_offset``: numbers; ``score_boundary``: true/false); a value of another type is
an ``LMError`` naming the file, never a traceback or a silent default.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError, LMError, OutputError
from ..fsutil import atomic_copy, atomic_dir, atomic_write
from ..records import Vocabulary
from .alphabet import hf_alphabet_labels
from .files import (
    ALPHABET_FILE,
    ATTRS_FILE,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_BOUNDARY,
    DEFAULT_UNK_SCORE_OFFSET,
    LM_FOLDER,
    LM_SUFFIXES,
    UNIGRAMS_FILE,
    lm_file_in,
)

logger = logging.getLogger("w2v2cli")

_NUMBER_KEYS = ("alpha", "beta", "unk_score_offset")


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise LMError(path, f"not UTF-8 text ({exc.reason})") from None
    except ValueError as exc:
        raise LMError(path, f"not valid JSON ({exc})") from None
    except OSError as exc:
        raise LMError(path, f"cannot read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise LMError(path, "does not hold a JSON object")
    return data


def read_attrs(path: Path) -> dict[str, float | bool]:
    """The beam-search settings an ``attrs.json`` holds, checked; ``{}`` if there is none.

    Keys other than the four known ones are ignored; ``null`` means "not set".
    """
    if not path.is_file():
        return {}
    raw = _read_json_object(path)
    attrs: dict[str, float | bool] = {}
    for key in _NUMBER_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LMError(path, f"{key} must be a number, not {json.dumps(value)}")
        if not math.isfinite(value):
            raise LMError(path, f"{key} must be a finite number, not {value}")
        attrs[key] = float(value)
    boundary = raw.get("score_boundary")
    if boundary is not None:
        if not isinstance(boundary, bool):
            raise LMError(path, f"score_boundary must be true or false, not {json.dumps(boundary)}")
        attrs["score_boundary"] = boundary
    return attrs


def attrs_path(folder: Path) -> Path:
    """The ``attrs.json`` to update for ``folder``: a ``language_model/`` folder (one with
    an ``attrs.json`` or a KenLM file) or a model folder that has one. Checked before any
    tuning so a long search never ends in a path error. Raises ``ConfigError``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")

    def is_lm_folder(path: Path) -> bool:
        return (path / ATTRS_FILE).is_file() or lm_file_in(path) is not None

    for candidate in (folder, folder / LM_FOLDER):
        if candidate.is_dir() and is_lm_folder(candidate):
            target = candidate / ATTRS_FILE
            if target.is_file():
                _read_json_object(target)  # a broken file fails now, not after the search
            return target
    raise ConfigError(
        f"{folder} is neither a {LM_FOLDER}/ folder (with {ATTRS_FILE} or a KenLM file) nor "
        f"a model folder that has one"
    )


def update_lm_attrs(folder: Path, alpha: float, beta: float) -> Path:
    """Set ``alpha`` and ``beta`` in ``folder``'s ``attrs.json`` (see ``attrs_path``),
    keeping its other keys (unk_score_offset, score_boundary, anything else) and their
    order; a missing file is created. Written atomically (``fsutil``): readers see the old
    or the new file, never half of one. Returns the path.
    """
    target = attrs_path(folder)
    data = _read_json_object(target) if target.is_file() else {}
    data["alpha"] = float(alpha)
    data["beta"] = float(beta)
    try:
        atomic_write(target, json.dumps(data))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def write_language_model_dir(
    model_dir: Path,
    lm_path: Path,
    unigrams_path: Path,
    vocab: Vocabulary | None,
    *,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    unk_score_offset: float = DEFAULT_UNK_SCORE_OFFSET,
    score_boundary: bool = DEFAULT_SCORE_BOUNDARY,
) -> Path:
    """Write ``model_dir/language_model/`` (attrs.json, unigrams.txt, the KenLM file) and,
    with a vocabulary, ``model_dir/alphabet.json``. The folder appears whole or not at all;
    an existing ``language_model/`` is refused rather than replaced.
    """
    model_dir = Path(model_dir)
    target = model_dir / LM_FOLDER
    if lm_path.suffix not in LM_SUFFIXES:
        raise ConfigError(
            f"the LM file name must end in {', '.join(LM_SUFFIXES)} for {LM_FOLDER}/ "
            f"(pyctcdecode's rule), not {lm_path.name!r}"
        )
    attrs = {
        "alpha": float(alpha),
        "beta": float(beta),
        "unk_score_offset": float(unk_score_offset),
        "score_boundary": bool(score_boundary),
    }
    with atomic_dir(target) as tmp:
        atomic_write(tmp / ATTRS_FILE, json.dumps(attrs))
        atomic_copy(unigrams_path, tmp / UNIGRAMS_FILE)
        atomic_copy(lm_path, tmp / lm_path.name)
    if vocab is not None:
        alphabet = {"labels": hf_alphabet_labels(vocab), "is_bpe": vocab.is_subword}
        atomic_write(model_dir / ALPHABET_FILE, json.dumps(alphabet))
    else:
        logger.warning(
            "no model vocabulary given: %s not written; transformers' "
            "Wav2Vec2ProcessorWithLM needs it (w2v2 itself does not)",
            model_dir / ALPHABET_FILE,
        )
    return target
