"""A model loaded once and what is made of its emissions: ``Transcriber`` (a decoder),
``Aligner`` (known texts), their base ``ModelPipeline``, the ``FilePipeline`` protocol the
drivers drive, and what a run does with each result (``outputs``: pending work, writing,
the summary, progress). The drivers are ``run.py`` (local) and ``scale/ray_data.py``."""

from .aligner import Aligner, TextsPipeline
from .base import FilePipeline, ModelPipeline
from .outputs import NullProgress, Progress, RunSummary, pending, write_outputs
from .transcriber import Transcriber

__all__ = [
    "Aligner",
    "FilePipeline",
    "ModelPipeline",
    "NullProgress",
    "Progress",
    "RunSummary",
    "TextsPipeline",
    "Transcriber",
    "pending",
    "write_outputs",
]
