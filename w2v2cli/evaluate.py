"""Score a model and one or more decoders on a labelled manifest.

The model runs once (through the same ``Transcriber.emissions`` engine as ``transcribe``,
so chunking and batching are identical); every decoder then decodes the same
log-probabilities. ``save_logits`` writes them to a folder that ``load_logits`` reads back,
so decoders and LM weights can be compared later without the model.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .decoders import Decoder
from .errors import ConfigError, W2V2Error
from .manifest import Manifest, ManifestEntry
from .metrics import Score, UtteranceScore, aggregate, utterance_scores
from .records import Emissions, Vocabulary

LOGITS_META = "w2v2cli-logits.json"


@dataclass
class DecoderResult:
    """One decoder's scores over the utterances that could be read."""

    name: str
    utterances: list[UtteranceScore]
    score: Score
    decode_seconds: float


@dataclass
class EvalResult:
    """Everything an eval run found: per-decoder scores, failures and timings."""

    decoders: list[DecoderResult]
    failed: list[tuple[ManifestEntry, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    model_seconds: float = 0.0


# -- saved log-probabilities ---------------------------------------------------------------


def _logits_name(index: int, entry: ManifestEntry) -> str:
    return f"{index:06d}.npz"


def save_emissions(folder: Path, index: int, entry: ManifestEntry, em: Emissions) -> None:
    """Write one utterance's emissions atomically as ``NNNNNN.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                log_probs=em.log_probs,
                frame_starts=em.frame_starts,
                frame_duration=np.float64(em.frame_duration),
                duration=np.float64(em.duration),
                audio=np.str_(str(entry.audio)),
            )
        os.replace(tmp, folder / _logits_name(index, entry))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_logits_meta(folder: Path, model: str, vocabulary: Vocabulary) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": model,
        "tokens": list(vocabulary.tokens),
        "blank_id": vocabulary.blank_id,
        "delimiter_id": vocabulary.delimiter_id,
        "special_ids": sorted(vocabulary.special_ids),
    }
    (folder / LOGITS_META).write_text(json.dumps(meta, ensure_ascii=False, indent=1))


def load_logits_meta(folder: Path) -> tuple[str, Vocabulary]:
    """The model name and vocabulary saved with a logits folder."""
    path = folder / LOGITS_META
    if not path.is_file():
        raise ConfigError(f"{folder} holds no saved logits ({LOGITS_META} is missing)")
    meta = json.loads(path.read_text())
    vocab = Vocabulary(
        tokens=tuple(meta["tokens"]),
        blank_id=int(meta["blank_id"]),
        delimiter_id=meta["delimiter_id"],
        special_ids=frozenset(int(i) for i in meta["special_ids"]),
    )
    return meta["model"], vocab


def load_emissions(folder: Path, index: int, entry: ManifestEntry) -> Emissions:
    path = folder / _logits_name(index, entry)
    if not path.is_file():
        raise W2V2Error(f"no saved logits ({path.name}) for this utterance")
    with np.load(path) as z:
        if str(z["audio"]) != str(entry.audio):
            raise W2V2Error(f"saved logits {path.name} belong to {z['audio']}, not this file")
        return Emissions(
            log_probs=z["log_probs"],
            frame_starts=z["frame_starts"],
            frame_duration=float(z["frame_duration"]),
            duration=float(z["duration"]),
        )


# -- the run -----------------------------------------------------------------------------


def compute_emissions(
    manifest: Manifest,
    *,
    transcriber: object | None = None,
    load_logits: Path | None = None,
    save_logits: Path | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> tuple[list[tuple[ManifestEntry, Emissions]], list[tuple[ManifestEntry, str]], float]:
    """Log-probabilities for every readable entry, from the model or from saved logits.

    Returns ``(ok, failed, seconds)``: entries with their emissions in manifest order,
    entries that failed with the reason, and the wall time spent.
    """
    from .audio import load_audio

    started = time.perf_counter()
    entries = list(manifest.entries)
    ok: list[tuple[ManifestEntry, Emissions]] = []
    failed: list[tuple[ManifestEntry, str]] = []
    if load_logits is not None:
        for i, entry in enumerate(entries):
            try:
                ok.append((entry, load_emissions(load_logits, i, entry)))
            except (W2V2Error, OSError, ValueError, KeyError) as exc:
                failed.append((entry, str(exc)))
        return ok, failed, time.perf_counter() - started

    if transcriber is None:
        raise ConfigError("a model or saved logits are needed")
    from .pipeline import Transcriber

    assert isinstance(transcriber, Transcriber)
    sr = transcriber.sampling_rate
    present: list[tuple[int, ManifestEntry]] = []
    for i, entry in enumerate(entries):
        if entry.audio.is_file():
            present.append((i, entry))
        else:
            failed.append((entry, "no such file"))
    if save_logits is not None:
        save_logits_meta(save_logits, transcriber.loaded.name, transcriber.loaded.vocabulary)
    loaders = [(lambda p=e.audio: load_audio(p, sr)) for _, e in present]
    for k, em in transcriber.emissions(loaders, on_audio=on_audio):
        index, entry = present[k]
        if isinstance(em, W2V2Error):
            failed.append((entry, getattr(em, "reason", str(em))))
            continue
        if save_logits is not None:
            save_emissions(save_logits, index, entry, em)
        ok.append((entry, em))
    order = {id(e): i for i, e in enumerate(entries)}
    failed.sort(key=lambda f: order[id(f[0])])
    return ok, failed, time.perf_counter() - started


def score_decoders(
    manifest: Manifest,
    emissions: Sequence[tuple[ManifestEntry, Emissions]],
    decoders: Sequence[Decoder],
    *,
    normalize: bool = True,
) -> list[DecoderResult]:
    """Decode the same emissions with each decoder and score against the references."""
    results = []
    for decoder in decoders:
        started = time.perf_counter()
        futures = [decoder.submit(em) for _, em in emissions]
        hyps = [f.result().text for f in futures]
        seconds = time.perf_counter() - started
        utts = utterance_scores(
            [e.text for e, _ in emissions],
            hyps,
            normalize=normalize,
            ids=[manifest.entry_id(e) for e, _ in emissions],
        )
        results.append(DecoderResult(decoder.name, utts, aggregate(utts), seconds))
    return results


def evaluate(
    manifest: Manifest,
    decoders: Sequence[Decoder],
    *,
    transcriber: object | None = None,
    normalize: bool = True,
    load_logits: Path | None = None,
    save_logits: Path | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> EvalResult:
    """One model pass (or saved logits), every decoder, corpus-level WER/CER for each."""
    ok, failed, model_seconds = compute_emissions(
        manifest,
        transcriber=transcriber,
        load_logits=load_logits,
        save_logits=save_logits,
        on_audio=on_audio,
    )
    results = score_decoders(manifest, ok, decoders, normalize=normalize)
    return EvalResult(
        decoders=results,
        failed=failed,
        audio_seconds=sum(em.duration for _, em in ok),
        model_seconds=model_seconds,
    )
