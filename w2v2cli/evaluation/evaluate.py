"""Score one model pass with one or more decoders on a labelled manifest.

The model runs once (an ``EmissionSource``: the engine, or saved logits); every decoder
then decodes the same log-probabilities. An utterance that cannot be read fails for every
decoder; one that a decoder cannot decode (a beam-search failure) fails for that decoder
only. Failed utterances are reported and left out of the scores; they never abort the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..decoding import Decoder
from ..errors import W2V2Error, reason_of
from ..records import Emissions, Transcript
from .emissions import EmissionSource, compute_emissions
from .manifest import Manifest, ManifestEntry
from .normalize import Normalization, prepare
from .scoring import Score, UtteranceScore, aggregate, utterance_scores


@dataclass(frozen=True)
class UtteranceAudio:
    """Where a scored utterance came from: its manifest entry and position in the manifest
    (``index``: what lines decoders up, as ids may repeat), the audio's duration in
    seconds, and the times of its hypothesis words *as scored* (one ``(start, end)`` per
    word of ``UtteranceScore.hyp``, in seconds), or None when the decoder gave none that
    match them (see ``scored_word_times``)."""

    entry: ManifestEntry
    index: int
    duration: float
    hyp_times: tuple[tuple[float, float], ...] | None


@dataclass
class DecoderResult:
    """One decoder's scores over the utterances it decoded, and those it could not.
    ``audio[i]`` says where ``utterances[i]`` came from."""

    name: str
    utterances: list[UtteranceScore]
    score: Score
    decode_seconds: float
    failed: list[tuple[ManifestEntry, str]] = field(default_factory=list)
    audio: list[UtteranceAudio] = field(default_factory=list)


@dataclass
class EvalResult:
    """Everything an eval run found: per-decoder scores, unreadable utterances, timings."""

    decoders: list[DecoderResult]
    failed: list[tuple[ManifestEntry, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def any_failed(self) -> bool:
        return bool(self.failed) or any(d.failed for d in self.decoders)


def score_decoders(
    manifest: Manifest,
    emissions: Sequence[tuple[ManifestEntry, Emissions]],
    decoders: Sequence[Decoder],
    *,
    normalize: Normalization = True,
) -> list[DecoderResult]:
    """Decode the same emissions with each decoder and score against the references."""
    results = []
    positions = {id(entry): i for i, entry in enumerate(manifest.entries)}

    def position(entry: ManifestEntry) -> int:  # the manifest's own entry, or an equal one
        found = positions.get(id(entry))
        return manifest.entries.index(entry) if found is None else found

    for decoder in decoders:
        started = time.perf_counter()
        futures = [(entry, decoder.submit(em)) for entry, em in emissions]
        decoded: list[tuple[ManifestEntry, Transcript]] = []
        failed: list[tuple[ManifestEntry, str]] = []
        for entry, future in futures:
            try:
                decoded.append((entry, future.result()))
            except W2V2Error as exc:
                failed.append((entry, reason_of(exc)))
        seconds = time.perf_counter() - started
        utts = utterance_scores(
            [e.text for e, _ in decoded],
            [t.text for _, t in decoded],
            normalize=normalize,
            ids=[manifest.entry_id(e) for e, _ in decoded],
        )
        audio = [
            UtteranceAudio(
                entry, position(entry), t.duration, scored_word_times(t, u.hyp, normalize)
            )
            for (entry, t), u in zip(decoded, utts, strict=True)
        ]
        results.append(DecoderResult(decoder.name, utts, aggregate(utts), seconds, failed, audio))
    return results


def scored_word_times(
    transcript: Transcript, hyp: str, normalize: Normalization = True
) -> tuple[tuple[float, float], ...] | None:
    """The ``(start, end)`` of every word of ``hyp`` (the hypothesis as scored), from the
    transcript's timed words. Normalisation may split a word ("well-known" → "well known":
    both parts get its times) or drop one (a lone "-"); each word is prepared alone, and
    the times are kept only when the words so prepared are exactly ``hyp``'s, else None
    (a normalisation function that joins words, say)."""
    tokens: list[str] = []
    times: list[tuple[float, float]] = []
    for word in transcript.words:
        for token in prepare(word.text, normalize).split():
            tokens.append(token)
            times.append((round(word.start, 3), round(word.end, 3)))
    return tuple(times) if tokens == hyp.split() else None


def evaluate(
    manifest: Manifest,
    decoders: Sequence[Decoder],
    source: EmissionSource,
    *,
    normalize: Normalization = True,
    save_logits: Path | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> EvalResult:
    """One model pass (or saved logits), every decoder, corpus-level WER/CER for each."""
    ok, failed, model_seconds = compute_emissions(
        manifest, source, save_logits=save_logits, on_audio=on_audio
    )
    results = score_decoders(manifest, ok, decoders, normalize=normalize)
    return EvalResult(
        decoders=results,
        failed=failed,
        audio_seconds=sum(em.duration for _, em in ok),
        model_seconds=model_seconds,
    )
