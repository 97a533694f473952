"""Ray Data: the transcription pipeline as stages of a Ray dataset (``--ray``).

::

    rows of inputs (index, path, id, out_base)                                 (driver)
      ─► decode + mono + resample      CPU tasks (``ds.map``)          ray_stages._decode
      ─► chunk, batch, infer, stitch   model actors, the model loaded  ray_stages._ModelStage
                                       once (one GPU each on CUDA, CPU threads otherwise)
      ─► greedy | beam (+ KenLM)       CPU actors, the decoder and LM  ray_stages._FinishStage
         ─► the same writers            loaded once: GPUs never wait on beam search
      ─► rows back to the driver       progress, --stdout, manifest, summary    iter_run_ray

Stage sizes come from ``ray_plan.plan_stages`` (pure). This module is the driver's side:
reaching Ray, checking the model, running the dataset, and ``transcribe_dataset``.

Each stage does what the local run does with the same code (``inference.Engine``,
``decoding.make_decoder``, ``pipeline.write_outputs``), and batch invariance makes the text
independent of how Ray groups files, so every output is byte for byte the local run's.

Failures: a file that fails at any stage becomes a row with its error (never an
exception that would fail the dataset). The driver loads the model's processor first, so
a model that cannot load fails at once, in one line. Actors are restarted and their tasks
retried when a worker dies; outputs are written atomically (``fsutil``), so a retried
file is written whole again, never half. A batch whose worker dies on every try (a file
that runs it out of memory) is given up after ``ray_stages.MODEL_RETRIES`` retries, and
the run goes on without it; once more than ``GIVEN_UP_TASKS`` tasks were given up, or Ray
fails otherwise, it stops. Either way each file not done is reported in one line (a
failed ``FileResult``) and the status says so: a rerun finishes them (the files done are
skipped). Only faults of the whole run (the model, the LM) end the run with an error, as
locally.

Chunking runs inside the model actor, beside inference: stitching needs all of a file's
chunks together, and a shuffle of chunks between stages would cost more than the
arithmetic it moves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ..audio import audio_duration
from ..errors import ConfigError, W2V2Error
from ..models import load_parts, model_ref
from ..options import RunOptions
from ..pipeline import NullProgress, Progress, pending, write_outputs
from ..records import AudioItem, FileResult, Transcript
from .ray_plan import DECODE_CPUS, RayOptions, StagePlan, plan_stages
from .ray_stages import CRASH_ON_ENV, CRASH_ONCE_ENV, FILES_PER_CALL, MODEL_RETRIES, pipeline

__all__ = [
    "CRASH_ONCE_ENV",
    "CRASH_ON_ENV",
    "DECODE_CPUS",
    "FILES_PER_CALL",
    "GIVEN_UP_TASKS",
    "MODEL_RETRIES",
    "RayOptions",
    "StagePlan",
    "check_model",
    "connect",
    "import_ray",
    "iter_run_ray",
    "plan_stages",
    "transcribe_dataset",
]

if TYPE_CHECKING:
    import ray.data


log = logging.getLogger("w2v2cli")

EXTRA_HINT = "install it with: pip install 'w2v2cli[ray]'"
#: Tasks Ray may give up (``ray_stages.MODEL_RETRIES``) before the run stops: a few files
#: that kill their worker every time are skipped, a fault that kills every batch is not
#: retried through the whole input.
GIVEN_UP_TASKS = 8


def import_ray() -> Any:
    """``ray`` with Ray Data, or a ``ConfigError`` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the part this module needs
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray Data ({exc}); {EXTRA_HINT}") from None
    return ray


def connect(options: RayOptions) -> bool:
    """Connect to (or start) Ray as ``options`` say; True when this call started it (the
    caller shuts it down), False when Ray was already initialised in this process."""
    ray = import_ray()
    if ray.is_initialized():
        _quiet_ray_data()
        return False
    address = options.address
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or "local"
    quiet: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    # Ray's C++ core logs an "E" line for every restartable Ray Data actor (about Ray
    # Data's own constructor arguments, ray-project/ray#53727): not the user's concern.
    # Its log level is read once, when ray.init starts the core, which announces it on
    # stderr; that announcement is dropped (failures still raise, and are reported).
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address != "local":
        _check_reachable(address)
    try:
        with _stderr_silenced():
            if address == "local":
                ray.init(address="local", num_cpus=options.num_cpus, **quiet)
            else:
                ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the cluster
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(f"cannot start or reach Ray at {address!r}: {reason}") from None
    _quiet_ray_data()
    return True


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's own minute of retries, when nothing listens at a
    ``host:port`` (or ``ray://host:port``) address."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: let Ray say what it makes of it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"cannot start or reach Ray at {address!r}: {reason}") from None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null while inside (C++ writes bypass ``sys.stderr``)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_ray_data() -> None:
    """Ray's own progress bars and logs off: the run draws its own progress (stderr) and
    stdout may carry results."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.enable_auto_log_stats = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = True
    ctx.execution_options.verbose_progress = False
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # A task given up is logged there with its traceback; the run reports its files.
    logging.getLogger("ray.data._internal.execution.streaming_executor_state").setLevel(
        logging.CRITICAL
    )


def check_model(options: RunOptions, notify: Callable[[str], None] | None = None) -> int:
    """Load the model's processor here, in the driver, so that a model that cannot load
    fails the run at once in one line (not after Ray's retries of actors that cannot
    start); returns the sampling rate the decoding tasks resample to."""
    parts = load_parts(model_ref(options.model, notify), options.model.language, notify)
    return int(parts.sampling_rate)


def _our_cause(exc: BaseException) -> W2V2Error | None:
    """The ``W2V2Error`` inside Ray's wrapping of an exception raised in a worker."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, W2V2Error):
            return current
        stack += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None


def _cluster() -> tuple[float, float, float]:
    """The cluster's CPUs and GPUs, and the CPUs of its largest node."""
    import ray

    resources = ray.cluster_resources()
    nodes = [n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    cpus = float(resources.get("CPU", 1.0))
    return cpus, float(resources.get("GPU", 0.0)), float(max(nodes, default=cpus))


# --- the CLI's run and the Python API ----------------------------------------------------


def iter_run_ray(
    items: Sequence[AudioItem],
    options: RunOptions,
    ray_options: RayOptions | None = None,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
    notify: Callable[[str], None] | None = None,
) -> Iterator[FileResult]:
    """``run.iter_run`` on Ray Data: the same ``FileResult``s, outputs and skips.

    Outputs are written by the workers (to a folder every node can reach, for a cluster);
    with ``output.stdout`` the driver writes each result to ``stream`` in input order.
    Ray's driver prints the cluster's error messages (a worker that died) on
    ``sys.stdout`` from a thread of its own; the CLI points ``sys.stdout`` at stderr for
    the run and passes the real stdout as ``stream``.
    Raises ``LMError`` when the LM is unusable, like a local run.
    """
    ray_options = ray_options or RayOptions()
    progress = progress or NullProgress()
    todo, skipped, writers, stream = pending(items, options.output, stream)
    yield from skipped
    if not todo:
        return
    ray = import_ray()
    rate = check_model(options, notify)
    started_here = False
    try:
        started_here = connect(ray_options)
        cpus, gpus, node_cpus = _cluster()
        plan = plan_stages(options, ray_options, cpus, gpus, node_cpus)
        if notify is not None:
            notify(
                f"Ray: {cpus:g} CPUs, {gpus:g} GPUs; {plan.actors} model actor(s) on "
                f"{plan.options.model.device}, {plan.decoders} decoding actor(s)"
            )
        durations = [audio_duration(i.path) for i in todo]
        progress.start(len(todo), sum(d for d in durations if d) if any(durations) else None)
        rows = [
            {
                "w2v2_index": k,
                "w2v2_path": str(i.path),
                "w2v2_id": i.id,
                "w2v2_out_base": str(i.out_base),
            }
            for k, i in enumerate(todo)
        ]
        ds = pipeline(ray.data.from_items(rows), plan, rate, write=stream is None)
        ds.context.max_errored_blocks = GIVEN_UP_TASKS
        header = stream is not None and len(items) > 1
        done: set[int] = set()
        gave_up = (
            f"not done: Ray gave up on its batch after {MODEL_RETRIES} retries (its "
            "worker died each time); run the command again to finish it"
        )
        try:
            for row in ds.iter_rows():
                if row["w2v2_fatal"]:
                    raise pickle.loads(row["w2v2_fatal"])  # the LM's LMError, as locally
                done.add(int(row["w2v2_index"]))
                item = todo[int(row["w2v2_index"])]
                progress.advance_audio(float(row["w2v2_duration"]))
                progress.file_done()
                yield _result(row, item, writers, stream, header)
        except W2V2Error:
            raise
        except Exception as exc:  # Ray's wrapping of a fault of the whole run
            cause = _our_cause(exc)
            if cause is not None:
                raise cause from None
            if type(exc).__module__.split(".")[0] != "ray":
                raise  # not Ray's: a bug, with its traceback
            first = " ".join(str(exc).split())[:200]
            gave_up = (
                f"not done: the Ray run stopped ({type(exc).__name__}: {first}); run the "
                "command again to finish it"
            )
        for k, item in enumerate(todo):  # given up by Ray: each reported, as a failure
            if k not in done:
                progress.file_done()
                yield FileResult(item, "failed", error=gave_up)
    finally:
        if started_here:
            ray.shutdown()


def _result(
    row: dict[str, Any],
    item: AudioItem,
    writers: list[Any],
    stream: TextIO | None,
    header: bool,
) -> FileResult:
    """A driver-side ``FileResult`` from a finished row (written to ``stream`` here)."""
    if row["w2v2_status"] == "failed" and not row["w2v2_transcript"]:
        return FileResult(item, "failed", error=str(row["w2v2_error"]))
    transcript: Transcript = pickle.loads(row["w2v2_transcript"])
    if stream is not None:
        return write_outputs(transcript, item, writers, stream, header)
    if row["w2v2_status"] == "failed":
        return FileResult(item, "failed", transcript.duration, error=str(row["w2v2_error"]))
    outputs = tuple(Path(p) for p in json.loads(row["w2v2_outputs"]))
    return FileResult(item, "done", transcript.duration, transcript, outputs=outputs)


def transcribe_dataset(
    ds: ray.data.Dataset,
    options: RunOptions | None = None,
    ray_options: RayOptions | None = None,
) -> ray.data.Dataset:
    """Transcripts of a Ray dataset, for your own Ray pipelines (Ray must be initialised).

    Input rows have ``path`` (an audio file every worker can read) or ``audio`` (float32
    mono samples) with ``sampling_rate`` (default 16000). Output rows keep the input's
    other columns (``path`` included; not ``audio``) and add ``text``, ``words`` (JSON: a
    list of ``{"word", "start", "end", "confidence"}``), ``confidence``, ``duration``
    (seconds) and ``error`` (``""`` when the row succeeded). Nothing is written to files.
    Model and decoder are loaded once per actor; sizes come from ``ray_options`` and the
    cluster, as for ``--ray``.
    """
    ray = import_ray()
    if not ray.is_initialized():
        raise ConfigError("transcribe_dataset needs Ray initialised (ray.init())")
    _quiet_ray_data()
    options = options or RunOptions()
    rate = check_model(options)
    cpus, gpus, node_cpus = _cluster()
    plan = plan_stages(options, ray_options or RayOptions(), cpus, gpus, node_cpus)

    def prepare(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        n = len(next(iter(batch.values())))
        out = {key: batch[key] for key in batch if key not in ("audio", "sampling_rate")}
        if "audio" in batch:
            rates = batch.get("sampling_rate", np.full(n, 16000))
            out["w2v2_audio"] = [np.asarray(a, np.float32).tobytes() for a in batch["audio"]]
            out["w2v2_rate"] = [int(r) for r in rates]
            out["w2v2_path"] = [""] * n
        elif "path" in batch:
            out["w2v2_audio"], out["w2v2_rate"] = [b""] * n, [rate] * n
            out["w2v2_path"] = [str(p) for p in batch["path"]]
        else:
            raise ConfigError("transcribe_dataset needs a 'path' or an 'audio' column")
        out["w2v2_index"] = np.arange(n)
        out["w2v2_error"] = [""] * n
        out["w2v2_id"] = list(out["w2v2_path"])
        out["w2v2_out_base"] = [""] * n
        return out

    def present(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        n = len(batch["w2v2_index"])
        text, words, confidence = [""] * n, ["[]"] * n, [float("nan")] * n
        for k in range(n):
            if batch["w2v2_transcript"][k]:
                t: Transcript = pickle.loads(batch["w2v2_transcript"][k])
                text[k] = t.text
                words[k] = json.dumps(
                    [
                        {"word": w.text, "start": w.start, "end": w.end, "confidence": w.confidence}
                        for w in t.words
                    ]
                )
                confidence[k] = float("nan") if t.confidence is None else t.confidence
        out = {key: batch[key] for key in batch if not key.startswith("w2v2_")}
        out.update(
            text=text,
            words=words,
            confidence=confidence,
            duration=batch["w2v2_duration"],
            error=batch["w2v2_error"],
        )
        return out

    ds = ds.map_batches(prepare, batch_format="numpy", num_cpus=DECODE_CPUS)
    return pipeline(ds, plan, rate, write=False).map_batches(
        present, batch_format="numpy", num_cpus=DECODE_CPUS
    )
