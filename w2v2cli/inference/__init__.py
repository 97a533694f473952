"""Running the model: backends (torch, OpenVINO), the runner (batches → log-probabilities),
exact batching, and the windowed engine every command gets its emissions from. torch is
imported only when the torch backend is used."""

from .engine import AudioLoader, Engine, file_loader
from .runner import Runner

__all__ = ["AudioLoader", "Engine", "Runner", "file_loader"]
