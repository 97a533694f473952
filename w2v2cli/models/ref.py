"""What ``-m`` points at, answered once: the name the user typed in, one ``ModelRef`` out.

Every command and loader asks here (``locate_model``, ``resolve_model``) and every refusal of
a model name is worded here, once:

====================  ==========================================  =========================
kind                  what was typed                              ``folder`` (files read)
====================  ==========================================  =========================
``folder``            a transformers model folder (``config.json``)  that folder
``exported``          a folder written by ``w2v2 export``           that folder
                      (``model.xml`` beside the processor files)
``checkpoint``        an NVIDIA DLE or fairseq ``.pt`` file        its converted folder in
                                                                    the cache (None until
                                                                    ``resolve_model``)
``cached``            a hub id whose snapshot is in the HF cache   the snapshot folder
``hub``               a hub id not in the cache                    None (downloaded)
``ir``                an OpenVINO IR file (``.xml`` with its       None (``path`` is the
                      ``.bin``; ``-m x.bin`` names its ``.xml``),  ``.xml``; ``ir_file.py``)
                      as the Open Model Zoo's converter writes it
``onnx``              an ONNX file (``.onnx``)                     None (``path``)
====================  ==========================================  =========================

The ``ir`` and ``onnx`` kinds are networks alone (``ir_file.py``): they run on the OpenVINO
backend only, with the wav2vec2-base card's alphabet (or a ``vocab.json`` beside the file),
and transformers never reads them: ``check_downloadable``, which every transformers loader
calls first, refuses them in one line (``w2v2 export``, ``lm build --model``).

Refused with one line: a path that does not exist, a folder without ``config.json`` (for
the commands that read only a tokenizer, a folder with a tokenizer will do). A hub id that
must be downloaded when the hub cannot be reached is refused by
``ModelRef.check_downloadable`` when (and only when) a loader needs what is not cached.

Nothing here imports torch or transformers; a hub id is looked up in the cache only
(``hub.py``), never on the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..lm import find_model_lm
from ..options import ModelOptions
from . import hub
from .convert import cached_conversion, converted_folder

#: The kinds of ``ModelRef`` (module docstring).
FOLDER = "folder"
EXPORTED = "exported"
CHECKPOINT = "checkpoint"
CACHED = "cached"
HUB = "hub"
IR = "ir"
ONNX = "onnx"
KINDS = (FOLDER, EXPORTED, CHECKPOINT, CACHED, HUB, IR, ONNX)
#: The kinds that are one network file OpenVINO reads (``ir_file.py``).
MODEL_FILES = (IR, ONNX)

#: The file ``w2v2 export`` writes the OpenVINO model to (``inference/ir_cache.py``).
IR_FILE = "model.xml"
#: Files of which one makes a folder without ``config.json`` a tokenizer (``tokenizer_only``).
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "tokenizer.json")


@dataclass(frozen=True)
class ModelRef:
    """One model as the user named it (``name``) and where its files are (module docstring).

    ``path`` is the file or folder on disk the name points at (None for a hub id);
    ``folder`` is where config, tokenizer and weights are read from; ``complete`` is False
    for a cached snapshot that lacks the weights (transformers then reads the hub id).
    ``revision`` and ``cache_dir`` are the options the name was resolved with.
    """

    name: str
    kind: str
    path: Path | None = None
    folder: Path | None = None
    complete: bool = True
    revision: str | None = None
    cache_dir: Path | None = None

    @property
    def is_hub(self) -> bool:
        """A hub id (cached or not): its own LM is looked up on the hub, not in a folder."""
        return self.kind in (CACHED, HUB)

    @property
    def pretrained(self) -> str:
        """What transformers' ``from_pretrained`` reads: the folder whenever it holds
        everything, else the hub id (which downloads what is missing)."""
        if self.folder is not None and self.complete:
            return str(self.folder)
        return self.name

    @property
    def downloads(self) -> bool:
        """Whether loading the weights needs the hub (``pretrained`` is the hub id)."""
        return self.is_hub and self.pretrained == self.name

    def load_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every ``from_pretrained`` call for this model."""
        kwargs: dict[str, Any] = {"trust_remote_code": False}
        if self.cache_dir is not None:
            kwargs["cache_dir"] = str(self.cache_dir)
        if self.revision is not None and self.downloads:
            kwargs["revision"] = self.revision
        return kwargs

    @property
    def is_model_file(self) -> bool:
        """An OpenVINO IR or ONNX file: the network alone, run on the OpenVINO backend."""
        return self.kind in MODEL_FILES

    def check_downloadable(self) -> None:
        """Refuse (one line) a hub id whose weights must be downloaded when the hub cannot
        be reached, and a model file that transformers cannot read (every transformers
        loader calls this first); a no-op for anything else."""
        if self.is_model_file:
            what = "an OpenVINO IR" if self.kind == IR else "an ONNX"
            raise ModelError(
                f"{self.name} is {what} file: it holds the network alone, which transcribe, "
                "eval and align run on the OpenVINO backend; this needs a transformers model "
                "folder, a hub id or a checkpoint file"
            )
        if self.downloads:
            self.check_reachable()

    def check_reachable(self) -> None:
        """Refuse (one line) to fetch files of a hub id when the hub cannot be reached."""
        reason = hub.unreachable_reason() if self.is_hub else None
        if reason is not None:
            raise ModelError(
                f"model {self.name!r} is not a local model folder and is not in the Hugging "
                f"Face cache, and it cannot be downloaded ({reason})"
            )

    def lm_dir(self) -> Path | None:
        """The model's own ``language_model/`` folder (``Wav2Vec2ProcessorWithLM`` layout),
        or None: in the folder for a local model, from the cache or the hub for a hub id
        (``hub.model_lm_folder``). Called only when beam search could use it."""
        if self.is_hub:
            return hub.model_lm_folder(self.name, self.cache_dir, self.revision)
        if self.kind in (FOLDER, EXPORTED) and self.folder is not None:
            return find_model_lm(self.folder)
        return None  # a converted checkpoint has no LM of its own


def is_local(name: str) -> bool:
    """A folder or file (or a path-looking name) rather than a hub id."""
    return (
        os.path.isdir(name)
        or os.path.isfile(name)
        or name.startswith((".", "/", "~"))
        or os.sep + os.sep in name
    )


def locate_model(
    name: str,
    cache_dir: Path | str | None = None,
    revision: str | None = None,
    *,
    tokenizer_only: bool = False,
) -> ModelRef:
    """What ``name`` points at (module docstring), without converting or downloading
    anything; raises ``ModelError`` with one line for a name that cannot be a model.
    ``tokenizer_only``: the caller reads only the tokenizer (``lm build --model``, ``w2v2
    languages``), so a folder holding a tokenizer without ``config.json`` will do."""
    cache = Path(cache_dir) if cache_dir is not None else None
    common = {"revision": revision, "cache_dir": cache}
    if not is_local(name):
        snapshot = hub.cached_files(name, cache, revision)
        if snapshot is None:
            return ModelRef(name, HUB, **common)
        return ModelRef(name, CACHED, folder=snapshot, complete=hub.has_weights(snapshot), **common)
    path = Path(name).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".xml":
            return ModelRef(name, IR, path=path, **common)
        if suffix == ".bin" and path.with_suffix(".xml").is_file():
            return ModelRef(name, IR, path=path.with_suffix(".xml"), **common)
        if suffix == ".onnx":
            return ModelRef(name, ONNX, path=path, **common)
        folder = cached_conversion(path, cache)
        return ModelRef(name, CHECKPOINT, path=path, folder=folder, **common)
    if not path.is_dir():
        raise ModelError(f"model folder {name!r} does not exist")
    if (path / IR_FILE).is_file():
        return ModelRef(name, EXPORTED, path=path, folder=path, **common)
    tokenizer = any((path / f).is_file() for f in TOKENIZER_FILES)
    if not (path / "config.json").is_file() and not (tokenizer_only and tokenizer):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".xml", ".onnx"))
        hint = f" (for the model file in it, give -m {files[0]})" if files else ""
        raise ModelError(f"{name!r} is not a model folder: it has no config.json{hint}")
    return ModelRef(name, FOLDER, path=path, folder=path, **common)


def resolve_model(
    name: str,
    cache_dir: Path | str | None = None,
    revision: str | None = None,
    notify: Callable[[str], None] | None = None,
    *,
    tokenizer_only: bool = False,
) -> ModelRef:
    """``locate_model``, with a checkpoint file converted to its model folder (once: the
    conversion is cached, ``convert.converted_folder``; ``notify`` hears of it)."""
    ref = locate_model(name, cache_dir, revision, tokenizer_only=tokenizer_only)
    return converted(ref, notify)


def model_ref(options: ModelOptions, notify: Callable[[str], None] | None = None) -> ModelRef:
    """``resolve_model`` for the model options of a run (``-m``, ``--cache-dir``,
    ``--revision``)."""
    return resolve_model(options.model, options.cache_dir, options.revision, notify)


def converted(ref: ModelRef, notify: Callable[[str], None] | None = None) -> ModelRef:
    """``ref`` with its folder: a checkpoint file converted (once), others unchanged."""
    if ref.kind != CHECKPOINT or ref.folder is not None:
        return ref
    assert ref.path is not None
    return replace(ref, folder=converted_folder(ref.path, ref.cache_dir, notify))


def find_model_lm_dir(
    name: str, cache_dir: Path | None = None, revision: str | None = None
) -> Path | None:
    """``ModelRef.lm_dir`` of a model given by name; None, not an error, when the name
    points at nothing usable (a folder since removed, say)."""
    try:
        return locate_model(name, cache_dir, revision).lm_dir()
    except ModelError:
        return None
