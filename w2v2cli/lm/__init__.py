"""The LM side of beam search: the alphabet (a model's output ids as beam search and an LM
see them, letter case on both sides), KenLM files and word lists, ``language_model/``
folders and ``attrs.json``, training-text normalisation and building with lmplz. No
decoding here."""

from .build import KENLM_MAX_ORDER, LMBuildResult, build_lm, default_memory, find_kenlm_tool
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
    check_lm_file,
    find_model_lm,
    is_binary_lm,
    lm_file_in,
    read_arpa_header,
    read_arpa_unigrams,
    read_unigrams,
    unigrams_path_for,
    write_unigrams,
)
from .folder import attrs_path, read_attrs, update_lm_attrs, write_language_model_dir
from .source import LMSource, resolve_lm
from .text import normalize_for_alphabet

__all__ = [
    "ALPHABET_FILE",
    "ATTRS_FILE",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_SCORE_BOUNDARY",
    "DEFAULT_UNK_SCORE_OFFSET",
    "KENLM_MAX_ORDER",
    "LM_FOLDER",
    "LM_SUFFIXES",
    "UNIGRAMS_FILE",
    "LMBuildResult",
    "LMSource",
    "attrs_path",
    "build_lm",
    "check_lm_file",
    "default_memory",
    "find_kenlm_tool",
    "find_model_lm",
    "is_binary_lm",
    "lm_file_in",
    "normalize_for_alphabet",
    "read_arpa_header",
    "read_arpa_unigrams",
    "read_attrs",
    "read_unigrams",
    "resolve_lm",
    "unigrams_path_for",
    "update_lm_attrs",
    "write_language_model_dir",
    "write_unigrams",
]
