"""Ray Data: the transcription pipeline as stages of a Ray dataset (``--ray``).

::

    rows of inputs (index, path, id, out_base)
      ─► decode + mono + resample      CPU tasks (``ds.map``)                   _decode
      ─► chunk, batch, infer, stitch   model actors, the model loaded once      _ModelStage
                                       (one GPU each on CUDA, CPU threads otherwise)
      ─► greedy | beam (+ KenLM)       CPU actors, the decoder and LM loaded    _FinishStage
         ─► the same writers            once: GPUs never wait on beam search
      ─► rows back to the driver       progress, --stdout, manifest, summary    iter_run_ray

Each stage does what the local run does with the same code (``inference.Engine``,
``decoding.make_decoder``, ``run.write_outputs``), and batch invariance makes the text
independent of how Ray groups files, so every output is byte for byte the local run's.

Failures: a file that fails at any stage becomes a row with its error (never an
exception that would fail the dataset). The driver loads the model's processor first, so
a model that cannot load fails at once, in one line. Actors are restarted and their tasks
retried when a worker dies; outputs are written atomically (``fsutil``), so a retried
file is written whole again, never half. Only faults of the whole run (the model, the LM)
end the run, as locally.

Chunking runs inside the model actor, beside inference: stitching needs all of a file's
chunks together, and a shuffle of chunks between stages would cost more than the
arithmetic it moves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ..errors import ConfigError, LMError, W2V2Error, reason_of
from ..options import RunOptions
from ..records import AudioItem, FileResult, Transcript

if TYPE_CHECKING:
    import ray.data

    from ..run import Progress

log = logging.getLogger("w2v2cli")

EXTRA_HINT = "install it with: pip install 'w2v2cli[ray]'"
#: Set to a file path, makes the first model actor that finds the file missing create it
#: and die in its first batch (the tests' way to check that Ray retries a dead worker).
CRASH_ONCE_ENV = "W2V2_RAY_TEST_CRASH_ONCE"
#: Files a model actor takes per call: enough to share batches across short files.
FILES_PER_CALL = 8
#: Logical CPUs of a decoding task (reading and resampling one file: light).
DECODE_CPUS = 0.25


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a ``--ray`` run goes.

    ``address``: ``"auto"`` (the cluster ``RAY_ADDRESS`` names, else a new local
    instance), ``"local"`` (always a new local instance) or a cluster address
    (``"ray://head:10001"``, ``"head:6379"``). ``actors``: model actors (default: one per
    GPU on CUDA, else one per ``threads`` CPUs). ``num_cpus``: CPUs of a local instance
    (default: all). ``decoders``: beam-search actors (default: the CPUs left over).
    """

    address: str = "auto"
    actors: int | None = None
    num_cpus: int | None = None
    decoders: int | None = None

    def __post_init__(self) -> None:
        for name in ("actors", "num_cpus", "decoders"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"ray {name} must be at least 1")


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


@dataclass(frozen=True)
class _Plan:
    """How the stages are sized on the cluster at hand."""

    options: RunOptions  # with the device and threads each model actor uses
    actors: int
    model_cpus: float
    model_gpus: float
    decoders: int
    decoder_cpus: float


def plan_stages(options: RunOptions, ray_options: RayOptions, cpus: float, gpus: float,
                node_cpus: float | None = None) -> _Plan:  # fmt: skip
    """Stage sizes for a cluster of ``cpus`` CPUs and ``gpus`` GPUs (pure).

    Model actors: one per GPU on CUDA (one CPU each), else ``threads`` CPUs each (default:
    up to 4) over all CPUs, or over three quarters of them when beam search may run. What
    is left goes to decoding tasks (a quarter CPU each) and to beam-search actors (one CPU
    each where there is room, else sharing). The logical CPUs of one of each stage always
    fit, so no stage waits forever for resources.
    """
    device = options.model.device
    cuda = device.startswith("cuda") or (device == "auto" and gpus >= 1)
    if cuda and gpus < 1:
        raise ConfigError("--device cuda with --ray needs GPUs in the Ray cluster; it has none")
    cpus = max(float(cpus), 1.0)
    node = max(float(node_cpus or cpus), 1.0)  # an actor's CPUs must fit on one node
    if cuda:
        threads = options.model.threads or 1
        actors = ray_options.actors or int(gpus)
        model_cpus, model_gpus = 1.0, 1.0
        device = "cuda"  # Ray gives each actor its own GPU: "cuda:1" would not exist there
    else:
        threads = min(options.model.threads or 4, max(1, int(node - 0.5)))
        beam_likely = options.decoding.decoder == "beam" or options.decoding.lm is not None
        share = 0.75 if beam_likely else 1.0  # leave beam search its CPUs
        actors = ray_options.actors or max(1, int(cpus * share // threads))
        model_cpus, model_gpus = float(threads), 0.0
        device = "cpu"
    spare = cpus - DECODE_CPUS - 0.25
    if actors * model_cpus > spare:  # never more than the cluster holds: share the CPUs
        model_cpus = max(spare / actors, 0.1)
    model_cpus = min(model_cpus, max(node - DECODE_CPUS - 0.25, 0.1))
    left = max(cpus - DECODE_CPUS - actors * model_cpus, 0.25)
    beam = options.decoding.decoder == "beam" or options.decoding.lm is not None
    decoder_cpus = 1.0 if beam and left >= 1 else 0.25
    default_decoders = max(1, int(left // decoder_cpus)) if beam else max(1, min(actors, 4))
    decoders = ray_options.decoders or default_decoders
    run_options = dataclasses.replace(
        options,
        model=dataclasses.replace(options.model, device=device, threads=threads),
        decoding=dataclasses.replace(options.decoding, workers=0),
    )
    return _Plan(run_options, actors, model_cpus, model_gpus, decoders, decoder_cpus)


def check_model(options: RunOptions, notify: Callable[[str], None] | None = None) -> int:
    """Load the model's processor here, in the driver, so that a model that cannot load
    fails the run at once in one line (not after Ray's retries of actors that cannot
    start); returns the sampling rate the decoding tasks resample to."""
    from ..models import load_processor, load_processor_light

    parts = load_processor_light(options.model) or load_processor(options.model, notify)
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


# --- the stages -----------------------------------------------------------------------


def _decode(row: dict[str, Any], rate: int, cwd: str) -> dict[str, Any]:
    """Decode one input to float32 mono at ``rate`` (rows that carry audio pass through);
    relative paths are the driver's, from its working folder ``cwd``."""
    from ..audio import load_audio

    out = dict(row)
    if row.get("w2v2_audio") is not None and len(row["w2v2_audio"]):
        return out
    try:
        samples = load_audio(os.path.join(cwd, row["w2v2_path"]), rate)
    except W2V2Error as exc:
        out["w2v2_audio"], out["w2v2_error"] = b"", reason_of(exc)
    except MemoryError:
        out["w2v2_audio"], out["w2v2_error"] = b"", "not enough memory to decode this file"
    except Exception as exc:  # noqa: BLE001 - one file's fault, as in Engine's reader
        out["w2v2_audio"], out["w2v2_error"] = b"", f"{type(exc).__name__}: {exc}"
    else:
        out["w2v2_audio"] = np.ascontiguousarray(samples, np.float32).tobytes()
        out["w2v2_error"] = ""
    out["w2v2_rate"] = rate
    return out


class _ModelStage:
    """A model actor: the model is loaded once; each call turns a batch of decoded files
    into their emissions (the run's chunking, cross-file batching and stitching)."""

    def __init__(self, options: RunOptions, cwd: str) -> None:
        from ..inference import Engine

        _enter(cwd)
        self.options = options
        self.calls = 0
        self.fatal = b""
        try:
            self.engine = Engine(options.model, options.chunking, batch_size=options.batch_size,
                                 max_padding=options.max_padding, vad=options.vad)  # fmt: skip
            loaded = self.engine.loaded
            lm_dir = None
            decoding = options.decoding
            if decoding.decoder != "greedy" and decoding.lm is None:
                lm_dir = loaded.find_lm_dir(options.model.cache_dir, options.model.revision)
        except W2V2Error as exc:  # the driver loaded the processor; the weights failed here
            self.fatal = pickle.dumps(exc)
            return
        self.model = pickle.dumps((loaded.name, loaded.vocabulary, lm_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        self.calls += 1
        _maybe_crash(self.calls)
        if self.fatal:  # every row says so; the driver ends the run with this error
            n = len(batch["w2v2_index"])
            out = {key: batch[key] for key in batch
                   if key not in ("w2v2_audio", "w2v2_rate", "w2v2_error")}  # fmt: skip
            out.update(w2v2_error=["the model cannot run"] * n, w2v2_emissions=[b""] * n,
                       w2v2_model=[b""] * n, w2v2_fatal=[self.fatal] * n)  # fmt: skip
            return out
        rate = self.engine.sampling_rate
        n = len(batch["w2v2_index"])
        errors = [str(e) for e in batch["w2v2_error"]]
        emissions: list[bytes] = [b""] * n
        rows = [k for k in range(n) if not errors[k]]
        loaders = [self._loader(batch, k, rate) for k in rows]
        for j, em in self.engine.emissions(loaders):
            if isinstance(em, W2V2Error):
                errors[rows[j]] = reason_of(em)
            else:
                emissions[rows[j]] = pickle.dumps(em, protocol=5)
        out = {key: batch[key] for key in batch
               if key not in ("w2v2_audio", "w2v2_rate", "w2v2_error")}  # fmt: skip
        out["w2v2_error"] = errors
        out["w2v2_emissions"] = emissions
        out["w2v2_model"] = [self.model if e else b"" for e in emissions]
        out["w2v2_fatal"] = [b""] * n
        return out

    @staticmethod
    def _loader(batch: dict[str, np.ndarray], k: int, rate: int) -> Callable[[], np.ndarray]:
        data, have = batch["w2v2_audio"][k], int(batch["w2v2_rate"][k])
        path = str(batch["w2v2_path"][k])
        if have == rate:
            return lambda: np.frombuffer(data, np.float32)
        if path:  # the model wants another rate than the driver's processor said
            from ..inference import file_loader

            return file_loader(path, rate)
        from ..audio import resample

        return lambda: resample(np.frombuffer(data, np.float32), have, rate)


def _enter(cwd: str) -> None:
    """Work from the driver's folder where this node has it, so that relative paths (the
    model, the LM, outputs) mean what they meant on the command line."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


def _maybe_crash(calls: int) -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and calls == 1 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)  # a worker that dies mid-batch, as an OOM kill would


class _FinishStage:
    """A decoding actor: the decoder (and its LM) is built once; each call decodes files'
    emissions and, when ``write``, writes their outputs with the run's writers."""

    def __init__(self, options: RunOptions, write: bool, cwd: str) -> None:
        from ..output import get_writers

        _enter(cwd)
        self.options = options
        out = options.output
        self.writers = get_writers(out.formats, out.subtitles, out.case) if write else []
        self.decoder: Any = None
        self.model_key = b""

    def _decoder_for(self, model: bytes) -> Any:
        if model != self.model_key:
            from ..decoding import make_decoder

            _, vocabulary, lm_dir = pickle.loads(model)
            if self.decoder is not None:
                self.decoder.close()
            self.decoder = make_decoder(vocabulary, self.options.decoding, lambda: lm_dir)
            self.model_key = model
        return self.decoder

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from ..run import write_outputs

        n = len(batch["w2v2_index"])
        status, errors = ["failed"] * n, [str(e) for e in batch["w2v2_error"]]
        fatal: list[bytes] = [bytes(f) for f in batch["w2v2_fatal"]]
        durations, outputs, transcripts = [0.0] * n, ["[]"] * n, [b""] * n
        for k in range(n):
            if errors[k] or fatal[k]:
                continue
            em = pickle.loads(batch["w2v2_emissions"][k])
            durations[k] = float(em.duration)
            try:
                decoder = self._decoder_for(batch["w2v2_model"][k])
                name = pickle.loads(batch["w2v2_model"][k])[0]
                transcript = dataclasses.replace(decoder.decode(em), model=name,
                                                 decoder=decoder.name)  # fmt: skip
            except (LMError, ConfigError) as exc:  # the LM is broken for every file
                fatal[k], errors[k] = pickle.dumps(exc), str(exc)
                continue
            except W2V2Error as exc:
                errors[k] = reason_of(exc)
                continue
            transcripts[k] = pickle.dumps(transcript, protocol=5)
            if not self.writers:
                status[k] = "done"
                continue
            result = write_outputs(transcript, _item(batch, k), self.writers, None, False)
            status[k], errors[k] = result.status, result.error or ""
            outputs[k] = json.dumps([str(p) for p in result.outputs])
        out = {key: batch[key] for key in batch
               if key not in ("w2v2_emissions", "w2v2_model", "w2v2_error", "w2v2_fatal")}
        out.update(w2v2_status=status, w2v2_error=errors, w2v2_fatal=fatal,
                   w2v2_duration=durations, w2v2_outputs=outputs,
                   w2v2_transcript=transcripts)  # fmt: skip
        return out


def _item(batch: dict[str, np.ndarray], k: int) -> AudioItem:
    return AudioItem(Path(str(batch["w2v2_path"][k])), str(batch["w2v2_id"][k]),
                     Path(str(batch["w2v2_out_base"][k])))  # fmt: skip


def _pipeline(ds: ray.data.Dataset, plan: _Plan, rate: int, write: bool) -> ray.data.Dataset:
    """The three stages over a dataset of input rows (see the module docstring)."""
    cwd = os.getcwd()
    ds = ds.map(_decode, fn_kwargs={"rate": rate, "cwd": cwd}, num_cpus=DECODE_CPUS)
    # Ray Data restarts dead actors and retries their batches by default.
    ds = ds.map_batches(
        _ModelStage, fn_constructor_kwargs={"options": plan.options, "cwd": cwd},
        batch_size=FILES_PER_CALL,
        batch_format="numpy", concurrency=(1, plan.actors), num_cpus=plan.model_cpus,
        num_gpus=plan.model_gpus or None,
    )  # fmt: skip
    return ds.map_batches(
        _FinishStage, fn_constructor_kwargs={"options": plan.options, "write": write, "cwd": cwd},
        batch_size=1, batch_format="numpy", concurrency=(1, plan.decoders),
        num_cpus=plan.decoder_cpus,
    )  # fmt: skip


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
    from ..audio import audio_duration
    from ..run import NullProgress, pending, write_outputs

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
            notify(f"Ray: {cpus:g} CPUs, {gpus:g} GPUs; {plan.actors} model actor(s) on "
                   f"{plan.options.model.device}, {plan.decoders} decoding actor(s)")  # fmt: skip
        durations = [audio_duration(i.path) for i in todo]
        progress.start(len(todo), sum(d for d in durations if d) if any(durations) else None)
        rows = [{"w2v2_index": k, "w2v2_path": str(i.path), "w2v2_id": i.id,
                 "w2v2_out_base": str(i.out_base)} for k, i in enumerate(todo)]  # fmt: skip
        ds = _pipeline(ray.data.from_items(rows), plan, rate, write=stream is None)
        header = stream is not None and len(items) > 1
        try:
            for row in ds.iter_rows():
                if row["w2v2_fatal"]:
                    raise pickle.loads(row["w2v2_fatal"])  # the LM's LMError, as locally
                item = todo[int(row["w2v2_index"])]
                progress.advance_audio(float(row["w2v2_duration"]))
                progress.file_done()
                yield _result(row, item, writers, stream, header, write_outputs)
        except W2V2Error:
            raise
        except Exception as exc:  # Ray's wrapping of a fault of the whole run
            cause = _our_cause(exc)
            if cause is not None:
                raise cause from None
            if type(exc).__module__.split(".")[0] != "ray":
                raise  # not Ray's: a bug, with its traceback
            first = " ".join(str(exc).split())[:300]
            raise W2V2Error(f"the Ray run failed: {type(exc).__name__}: {first}") from None
    finally:
        if started_here:
            ray.shutdown()


def _result(row: dict[str, Any], item: AudioItem, writers: list[Any], stream: TextIO | None,
            header: bool, write_outputs: Callable[..., FileResult]) -> FileResult:  # fmt: skip
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
                words[k] = json.dumps([{"word": w.text, "start": w.start, "end": w.end,
                                        "confidence": w.confidence} for w in t.words])  # fmt: skip
                confidence[k] = float("nan") if t.confidence is None else t.confidence
        out = {key: batch[key] for key in batch if not key.startswith("w2v2_")}
        out.update(text=text, words=words, confidence=confidence,
                   duration=batch["w2v2_duration"], error=batch["w2v2_error"])  # fmt: skip
        return out

    ds = ds.map_batches(prepare, batch_format="numpy", num_cpus=DECODE_CPUS)
    return _pipeline(ds, plan, rate, write=False).map_batches(
        present, batch_format="numpy", num_cpus=DECODE_CPUS
    )

