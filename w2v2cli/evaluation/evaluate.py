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
from ..records import Emissions
from .emissions import EmissionSource, compute_emissions
from .manifest import Manifest, ManifestEntry
from .normalize import Normalization
from .scoring import Score, UtteranceScore, aggregate, utterance_scores


@dataclass
class DecoderResult:
    """One decoder's scores over the utterances it decoded, and those it could not."""

    name: str
    utterances: list[UtteranceScore]
    score: Score
    decode_seconds: float
    failed: list[tuple[ManifestEntry, str]] = field(default_factory=list)


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
    for decoder in decoders:
        started = time.perf_counter()
        futures = [(entry, decoder.submit(em)) for entry, em in emissions]
        decoded: list[tuple[ManifestEntry, str]] = []
        failed: list[tuple[ManifestEntry, str]] = []
        for entry, future in futures:
            try:
                decoded.append((entry, future.result().text))
            except W2V2Error as exc:
                failed.append((entry, reason_of(exc)))
        seconds = time.perf_counter() - started
        utts = utterance_scores(
            [e.text for e, _ in decoded],
            [hyp for _, hyp in decoded],
            normalize=normalize,
            ids=[manifest.entry_id(e) for e, _ in decoded],
        )
        results.append(DecoderResult(decoder.name, utts, aggregate(utts), seconds, failed))
    return results


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
