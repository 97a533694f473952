"""What an ``--lm`` argument points at: ``resolve_lm`` turns ``--lm`` (a KenLM file, a
``language_model/`` folder or a model folder that has one) and ``--unigrams`` into an
``LMSource``, reading only headers, word lists and ``attrs.json``: nothing heavy is loaded,
so a bad LM fails before any audio is read. Every problem with a file is an ``LMError``
naming it. Where unigram lists are looked for is explained in ``files``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LMError
from .files import (
    ATTRS_FILE,
    LM_FOLDER,
    UNIGRAMS_FILE,
    check_lm_file,
    find_model_lm,
    lm_file_in,
    read_arpa_unigrams,
    read_unigrams,
    unigrams_path_for,
)
from .folder import read_attrs

logger = logging.getLogger("w2v2cli")


@dataclass(frozen=True)
class LMSource:
    """A resolved LM: the KenLM file, its unigrams and settings found next to it.

    ``unigrams`` is None when none could be found (binary LM, no list). ``attrs`` holds
    what a ``language_model/attrs.json`` said (alpha, beta, unk_score_offset,
    score_boundary), possibly nothing.
    """

    path: Path
    format: str  # "arpa" | "binary"
    unigrams: tuple[str, ...] | None
    unigrams_from: str
    attrs: dict[str, float | bool] = field(default_factory=dict)


def _unigram_file(path: Path, folder_list: Path | None, given: Path | None) -> Path | None:
    if given is not None:
        return given
    if folder_list is not None:
        return folder_list
    own = unigrams_path_for(path)
    if own.is_file():
        return own
    return None


def resolve_lm(lm: Path, unigrams: Path | None = None) -> LMSource:
    """Turn ``--lm`` and ``--unigrams`` into an ``LMSource`` (unigram lists: see ``files``).

    Unigrams come from ``unigrams`` if given, else the folder's ``unigrams.txt``, else the
    LM's own ``NAME.unigrams.txt``, else the ARPA file's 1-grams, else a ``unigrams.txt``
    beside a binary LM (the name older builds wrote); with none, a warning says that
    results degrade.
    """
    lm = Path(lm)
    attrs: dict[str, float | bool] = {}
    folder_unigrams: Path | None = None
    if lm.is_dir():
        folder = lm if lm_file_in(lm) is not None else find_model_lm(lm)
        if folder is None:
            raise LMError(
                lm,
                f"a folder without a KenLM file (.arpa, .bin, .binary) or a {LM_FOLDER}/ "
                "folder holding one",
            )
        path = lm_file_in(folder)
        assert path is not None
        attrs = read_attrs(folder / ATTRS_FILE)
        if (folder / UNIGRAMS_FILE).is_file():
            folder_unigrams = folder / UNIGRAMS_FILE
    else:
        path = lm
    fmt = check_lm_file(path)
    listed = _unigram_file(path, folder_unigrams, unigrams)
    words: list[str] | None
    if listed is not None:
        words, source = read_unigrams(listed), str(listed)
    elif fmt == "arpa":
        words, source = read_arpa_unigrams(path), f"{path} (1-grams)"
    elif (path.parent / UNIGRAMS_FILE).is_file():
        words, source = read_unigrams(path.parent / UNIGRAMS_FILE), str(path.parent / UNIGRAMS_FILE)
    else:
        words, source = None, ""
    if words is not None and not words:
        words = None  # an empty list says nothing; pyctcdecode would treat all words as OOV
    if words is None:
        logger.warning(
            "no unigram list for the binary LM %s (give --unigrams, or keep the %s that "
            "`w2v2 lm build` writes beside it): beam search will rate every word as "
            "unknown while spelling it, so results degrade, and the LM's case cannot be "
            "checked against the model's",
            path,
            unigrams_path_for(path).name,
        )
    return LMSource(
        path=path,
        format=fmt,
        unigrams=None if words is None else tuple(words),
        unigrams_from=source,
        attrs=attrs,
    )
