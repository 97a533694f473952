"""The one way commands choose decoders: a vocabulary, ``DecodeOptions`` and, optionally,
where the model's own LM is. ``transcribe``, ``eval`` and ``lm tune`` all come here, with
a model or with saved logits alike, so they always agree on what ``auto`` means.

- ``greedy``: best path; ``--lm`` with only greedy decoders is refused (it would be ignored).
- ``beam``: beam search with ``--lm``, else the model's ``language_model/``, else no LM.
- ``auto``: beam search when ``--lm`` is given or the model ships an LM, else greedy.

``model_lm`` is a function, called at most once and only when a beam decoder could use
the model's LM, so greedy runs never look for one (for a hub model that can mean a fetch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..options import DecodeOptions
from ..records import Vocabulary
from .base import Decoder
from .beam import BeamDecoder
from .greedy import GreedyDecoder

ModelLM = Callable[[], Path | None]


def _lm_for(options: DecodeOptions, model_lm: ModelLM | None) -> Path | None:
    if options.lm is not None:
        return Path(options.lm)
    return model_lm() if model_lm is not None else None


def make_decoders(
    names: Sequence[str],
    vocabulary: Vocabulary,
    options: DecodeOptions | None = None,
    model_lm: ModelLM | None = None,
) -> list[Decoder]:
    """One decoder per name (``auto``/``greedy``/``beam``), duplicates dropped; on an error
    the decoders already built are closed."""
    options = options or DecodeOptions()
    names = list(dict.fromkeys(names)) or [options.decoder]
    if options.lm is not None and all(n == "greedy" for n in names):
        raise ConfigError("--lm needs beam search; it cannot be used with --decoder greedy")
    lm: list[Path | None] = []  # looked up once, on first need

    def lm_path() -> Path | None:
        if not lm:
            lm.append(_lm_for(options, model_lm))
        return lm[0]

    decoders: list[Decoder] = []
    try:
        for name in names:
            if name not in ("auto", "greedy", "beam"):
                raise ConfigError(f"decoder must be auto, greedy or beam, not {name!r}")
            path = None if name == "greedy" else lm_path()
            if name == "greedy" or (name == "auto" and path is None):
                if not any(isinstance(d, GreedyDecoder) for d in decoders):
                    decoders.append(GreedyDecoder(vocabulary))
                continue
            opts = dataclasses.replace(options, decoder="beam", lm=path)
            decoders.append(BeamDecoder(vocabulary, opts))
    except BaseException:
        for d in decoders:
            d.close()
        raise
    return decoders


def make_decoder(
    vocabulary: Vocabulary, options: DecodeOptions | None = None, model_lm: ModelLM | None = None
) -> Decoder:
    """The decoder ``options.decoder`` names (see the module docstring)."""
    options = options or DecodeOptions()
    return make_decoders([options.decoder], vocabulary, options, model_lm)[0]
