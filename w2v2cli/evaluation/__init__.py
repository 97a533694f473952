"""Scoring models and decoders: manifests, text normalisation, WER/CER, reports, emission
sources (the model or saved logits), ``evaluate`` and the alpha/beta search of ``lm tune``.
Runs the model only through the inference engine."""

from .emissions import (
    EmissionSource,
    LogitsStore,
    ModelSource,
    SavedSource,
    compute_emissions,
)
from .evaluate import DecoderResult, EvalResult, UtteranceAudio, evaluate, score_decoders
from .manifest import Manifest, ManifestEntry, load_manifest
from .normalize import Normalization, normalize, prepare
from .reports import (
    DecoderSummary,
    EvalReport,
    TuneReport,
    eval_report,
    report_format,
    tune_report,
    write_report,
)
from .scoring import ErrorCounts, Score, UtteranceScore, aggregate, score, utterance_scores, worst

__all__ = [
    "DecoderResult",
    "DecoderSummary",
    "EmissionSource",
    "ErrorCounts",
    "EvalReport",
    "EvalResult",
    "LogitsStore",
    "Manifest",
    "ManifestEntry",
    "ModelSource",
    "Normalization",
    "SavedSource",
    "Score",
    "TuneReport",
    "UtteranceAudio",
    "UtteranceScore",
    "aggregate",
    "compute_emissions",
    "eval_report",
    "evaluate",
    "load_manifest",
    "normalize",
    "prepare",
    "report_format",
    "score",
    "score_decoders",
    "tune_report",
    "utterance_scores",
    "worst",
    "write_report",
]
