"""Where ``eval`` and ``lm tune`` get log-probabilities: the model, or logits saved earlier.

One ``EmissionSource`` interface with two implementations, so both commands treat them
alike (decoders are chosen from ``source.vocabulary`` and ``source.model_lm``):

- ``ModelSource``: the ``Engine`` runs the model on the manifest's audio (the same chunking
  and batching as ``transcribe``);
- ``SavedSource``: a folder written by ``--save-logits``; the model is not loaded. Its
  ``w2v2cli-logits.json`` records the model's name, its folder (for a local model) and its
  vocabulary, so the model's own ``language_model/`` is still found.

Saved logits are one ``NNNNNN.npz`` per manifest entry (its index in the manifest), each
written atomically, plus the metadata file. A corrupt metadata file is a ``LogitsError``
naming it; a missing or corrupt utterance file fails that utterance only.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import AudioError, LogitsError, OutputError, W2V2Error, reason_of
from ..fsutil import atomic_write, check_output_dir, interruptions_held
from ..inference import Engine, file_loader
from ..lm import find_model_lm
from ..models import find_model_lm_dir
from ..records import Emissions, Vocabulary
from .manifest import Manifest, ManifestEntry

LOGITS_META = "w2v2cli-logits.json"

#: Entries with their emissions (in manifest order), and failed entries with the reason.
Computed = tuple[list[tuple[ManifestEntry, Emissions]], list[tuple[ManifestEntry, str]], float]


def _npz_name(index: int) -> str:
    return f"{index:06d}.npz"


class LogitsStore:
    """A ``--save-logits`` folder: write with ``create`` + ``save``, read with ``open`` +
    ``load``."""

    def __init__(self, folder: Path, model: str, model_dir: Path | None, vocabulary: Vocabulary):
        self.folder = Path(folder)
        self.model = model
        self.model_dir = model_dir
        self.vocabulary = vocabulary

    @classmethod
    def create(
        cls, folder: Path, model: str, model_dir: Path | None, vocabulary: Vocabulary
    ) -> LogitsStore:
        """Start a store (the folder is created; its metadata written atomically)."""
        folder = check_output_dir(Path(folder), "logits folder")
        meta = {
            "model": model,
            "model_dir": None if model_dir is None else str(Path(model_dir).resolve()),
            "tokens": list(vocabulary.tokens),
            "blank_id": vocabulary.blank_id,
            "delimiter_id": vocabulary.delimiter_id,
            "special_ids": sorted(vocabulary.special_ids),
        }
        try:
            atomic_write(folder / LOGITS_META, json.dumps(meta, ensure_ascii=False, indent=1))
        except OSError as exc:
            reason = exc.strerror or exc
            raise OutputError(f"cannot write {folder / LOGITS_META}: {reason}") from None
        return cls(folder, model, model_dir, vocabulary)

    @classmethod
    def open(cls, folder: Path) -> LogitsStore:
        """Read a store's metadata; ``LogitsError`` naming the file when it is unusable."""
        path = Path(folder) / LOGITS_META
        if not path.is_file():
            raise LogitsError(folder, f"holds no saved logits ({LOGITS_META} is missing)")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            tokens = tuple(meta["tokens"])
            if not all(isinstance(t, str) for t in tokens):
                raise ValueError("tokens must be strings")
            delimiter = meta["delimiter_id"]
            vocabulary = Vocabulary(
                tokens=tokens,
                blank_id=int(meta["blank_id"]),
                delimiter_id=None if delimiter is None else int(delimiter),
                special_ids=frozenset(int(i) for i in meta["special_ids"]),
            )
            if not 0 <= vocabulary.blank_id < vocabulary.size:
                raise ValueError(f"blank_id {vocabulary.blank_id} is outside the vocabulary")
            model = str(meta["model"])
            model_dir = meta.get("model_dir")
        except (OSError, UnicodeDecodeError) as exc:
            raise LogitsError(path, f"cannot read: {exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise LogitsError(path, f"not a valid logits metadata file ({what})") from None
        return cls(Path(folder), model, Path(model_dir) if model_dir else None, vocabulary)

    def save(self, index: int, entry: ManifestEntry, em: Emissions) -> None:
        """Write one utterance's emissions atomically as ``NNNNNN.npz``.

        The archive is built in memory first, with Ctrl-C and SIGTERM held back until it
        is whole (``fsutil.interruptions_held``, a few milliseconds): ``np.savez`` does
        not close its zip when interrupted, and the unclosed zip's clean-up at exit, on a
        buffer or file already closed, printed a traceback (2 runs in 25 here)."""
        buffer = io.BytesIO()
        with interruptions_held():
            np.savez(
                buffer,
                log_probs=em.log_probs,
                frame_starts=em.frame_starts,
                frame_duration=np.float64(em.frame_duration),
                duration=np.float64(em.duration),
                audio=np.str_(str(entry.audio)),
            )
        atomic_write(self.folder / _npz_name(index), buffer.getvalue())

    def load(self, index: int, entry: ManifestEntry) -> Emissions:
        """One utterance's emissions; ``LogitsError`` when missing, corrupt or not its own."""
        path = self.folder / _npz_name(index)
        if not path.is_file():
            raise LogitsError(path, "no saved logits for this utterance")
        try:
            with np.load(path) as z:
                if str(z["audio"]) != str(entry.audio):
                    raise LogitsError(path, f"these logits belong to {z['audio']}")
                em = Emissions(
                    log_probs=z["log_probs"],
                    frame_starts=z["frame_starts"],
                    frame_duration=float(z["frame_duration"]),
                    duration=float(z["duration"]),
                )
        except LogitsError:
            raise
        except (
            OSError,
            ValueError,
            KeyError,
            zipfile.BadZipFile,
            io.UnsupportedOperation,
            EOFError,
        ) as exc:
            raise LogitsError(path, f"corrupt saved logits ({type(exc).__name__})") from None
        if em.log_probs.ndim != 2 or em.log_probs.shape[1] != self.vocabulary.size:
            raise LogitsError(
                path,
                f"log-probabilities of shape {em.log_probs.shape} do not "
                f"fit the vocabulary of {self.vocabulary.size}",
            )
        return em


class EmissionSource(Protocol):
    """What ``eval`` and ``lm tune`` need from the model side."""

    model_name: str
    model_dir: Path | None  # a local model's folder (None for a hub id)
    vocabulary: Vocabulary

    def model_lm(self) -> Path | None:
        """The model's own ``language_model/`` folder, or None."""
        ...

    def emissions(
        self, entries: Sequence[tuple[int, ManifestEntry]], on_audio: Callable[[float], None]
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """``(manifest index, emissions or the reason it failed)``, in the given order."""
        ...


class ModelSource:
    """Emissions from the model, through the ``Engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model_name = engine.loaded.name
        self.vocabulary = engine.loaded.vocabulary
        self.model_dir = None if engine.loaded.is_hub else engine.loaded.local_dir

    def model_lm(self) -> Path | None:
        return self.engine.loaded.find_lm_dir()

    def emissions(
        self, entries: Sequence[tuple[int, ManifestEntry]], on_audio: Callable[[float], None]
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        sr = self.engine.sampling_rate
        loaders = [file_loader(entry.audio, sr) for _, entry in entries]
        for k, em in self.engine.emissions(loaders, on_audio=on_audio):
            yield entries[k][0], em


class SavedSource:
    """Emissions saved by ``--save-logits``; the model is not run."""

    def __init__(
        self, store: LogitsStore, cache_dir: Path | None = None, revision: str | None = None
    ) -> None:
        self.store = store
        self.model_name = store.model
        self.vocabulary = store.vocabulary
        self.model_dir = store.model_dir
        self._cache_dir = cache_dir
        self._revision = revision

    def model_lm(self) -> Path | None:
        if self.model_dir is not None:
            return find_model_lm(self.model_dir) if self.model_dir.is_dir() else None
        return find_model_lm_dir(self.model_name, self._cache_dir, self._revision)

    def emissions(
        self, entries: Sequence[tuple[int, ManifestEntry]], on_audio: Callable[[float], None]
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        for index, entry in entries:
            try:
                em = self.store.load(index, entry)
            except W2V2Error as exc:
                yield index, exc
                continue
            on_audio(em.duration)
            yield index, em


def compute_emissions(
    manifest: Manifest,
    source: EmissionSource,
    *,
    save_logits: Path | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> Computed:
    """Log-probabilities for every readable entry, from ``source``.

    Returns ``(ok, failed, seconds)``: entries with their emissions in manifest order,
    entries that failed with the reason (missing audio, undecodable audio, missing saved
    logits), and the wall time spent. ``save_logits`` keeps what the model computed.
    """
    started = time.perf_counter()
    entries = list(manifest.entries)
    failed: dict[int, str] = {}
    todo: list[tuple[int, ManifestEntry]] = []
    for i, entry in enumerate(entries):
        if isinstance(source, ModelSource) and not entry.audio.is_file():
            failed[i] = "no such file"
        else:
            todo.append((i, entry))
    store = None
    if save_logits is not None:
        store = LogitsStore.create(
            save_logits, source.model_name, source.model_dir, source.vocabulary
        )
    ok: dict[int, Emissions] = {}
    for index, em in source.emissions(todo, on_audio or (lambda _s: None)):
        if isinstance(em, W2V2Error):
            # Audio errors name the audio file, which the caller's line names already.
            failed[index] = reason_of(em) if isinstance(em, AudioError) else str(em)
            continue
        if store is not None:
            try:
                store.save(index, entries[index], em)
            except OSError as exc:
                failed[index] = f"cannot save its logits: {exc.strerror or exc}"
                continue
        ok[index] = em
    return (
        [(entries[i], ok[i]) for i in sorted(ok)],
        [(entries[i], failed[i]) for i in sorted(failed)],
        time.perf_counter() - started,
    )
