"""Running the model: backends (torch, OpenVINO), the runner (batches → log-probabilities),
exact batching, the windowed engine every command gets its emissions from (``engine``, its
steps in ``windows``) and the VAD (``vad``). torch is imported only when the torch backend
(or the VAD) is used."""

from .engine import Engine, file_loader
from .reading import AudioLoader
from .runner import Runner

__all__ = ["AudioLoader", "Engine", "Runner", "file_loader"]
