"""The stages of a ``--ray`` run, as Ray Data runs them (imported in Ray's workers).

``_decode`` (CPU tasks) reads and resamples one input; ``_ModelStage`` (actors) loads the
model once and turns batches of decoded files into emissions with the run's chunking,
cross-file batching and stitching (``inference.Engine``); ``_FinishStage`` (CPU actors)
builds the decoder and LM once, decodes and writes with the run's writers
(``pipeline.write_outputs``). Rows carry their own columns under a ``w2v2_`` prefix; a file's
fault is its row's ``w2v2_error``, a fault of the whole run (the model, the LM) a pickled
exception in ``w2v2_fatal``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import load_audio, resample
from ..decoding import make_decoder
from ..errors import ConfigError, LMError, W2V2Error, reason_of
from ..inference import Engine, file_loader
from ..options import RunOptions
from ..output import get_writers
from ..pipeline import write_outputs
from ..records import AudioItem
from .ray_plan import DECODE_CPUS, StagePlan

if TYPE_CHECKING:
    import ray.data

#: Set to a file path, makes the first model actor that finds the file missing create it
#: and kill itself (SIGKILL) in its first batch (the tests' way to check that Ray
#: restarts a dead worker and retries its batch).
CRASH_ONCE_ENV = "W2V2_RAY_TEST_CRASH_ONCE"
#: Set to a piece of a path, makes a model actor kill itself (SIGKILL) whenever its batch
#: holds a file whose path contains it, on every try (the tests' way to exhaust retries).
CRASH_ON_ENV = "W2V2_RAY_TEST_CRASH_ON"
#: Files a model actor takes per call: enough to share batches across short files.
FILES_PER_CALL = 8
#: Tries of a model batch after the first when its worker dies (killed for memory, a
#: crash): a dead actor is always restarted, but a batch that kills it every time is
#: given up after these, and its files are reported not done (``ray_data.iter_run_ray``).
MODEL_RETRIES = 3


def _decode(row: dict[str, Any], rate: int, cwd: str) -> dict[str, Any]:
    """Decode one input to float32 mono at ``rate`` (rows that carry audio pass through);
    relative paths are the driver's, from its working folder ``cwd``."""
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
        _enter(cwd)
        self.options = options
        self.calls = 0
        self.fatal = b""
        try:
            self.engine = Engine.from_options(options)
            loaded = self.engine.loaded
            lm_dir = None
            decoding = options.decoding
            if decoding.decoder != "greedy" and decoding.lm is None:
                lm_dir = loaded.find_lm_dir()
        except W2V2Error as exc:  # the driver loaded the processor; the weights failed here
            self.fatal = pickle.dumps(exc)
            return
        self.model = pickle.dumps((loaded.name, loaded.vocabulary, lm_dir))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        self.calls += 1
        _maybe_crash(self.calls, [str(p) for p in batch["w2v2_path"]])
        if self.fatal:  # every row says so; the driver ends the run with this error
            n = len(batch["w2v2_index"])
            out = {
                key: batch[key]
                for key in batch
                if key not in ("w2v2_audio", "w2v2_rate", "w2v2_error")
            }
            out.update(
                w2v2_error=["the model cannot run"] * n,
                w2v2_emissions=[b""] * n,
                w2v2_model=[b""] * n,
                w2v2_fatal=[self.fatal] * n,
            )
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
        out = {
            key: batch[key] for key in batch if key not in ("w2v2_audio", "w2v2_rate", "w2v2_error")
        }
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
            return file_loader(path, rate)
        return lambda: resample(np.frombuffer(data, np.float32), have, rate)


def _enter(cwd: str) -> None:
    """Work from the driver's folder where this node has it, so that relative paths (the
    model, the LM, outputs) mean what they meant on the command line."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


def _maybe_crash(calls: int, paths: list[str]) -> None:
    """The tests' faults (``CRASH_ONCE_ENV``, ``CRASH_ON_ENV``): a worker killed mid-batch
    with SIGKILL, as the kernel's out-of-memory killer does."""
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and calls == 1 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    poison = os.environ.get(CRASH_ON_ENV)
    if poison and any(poison in p for p in paths):
        os.kill(os.getpid(), signal.SIGKILL)


class _FinishStage:
    """A decoding actor: the decoder (and its LM) is built once; each call decodes files'
    emissions and, when ``write``, writes their outputs with the run's writers."""

    def __init__(self, options: RunOptions, write: bool, cwd: str) -> None:
        _enter(cwd)
        self.options = options
        out = options.output
        self.writers = get_writers(out.formats, out.subtitles, out.case) if write else []
        self.decoder: Any = None
        self.model_key = b""

    def _decoder_for(self, model: bytes) -> Any:
        if model != self.model_key:
            _, vocabulary, lm_dir = pickle.loads(model)
            if self.decoder is not None:
                self.decoder.close()
            self.decoder = make_decoder(vocabulary, self.options.decoding, lambda: lm_dir)
            self.model_key = model
        return self.decoder

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
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
                transcript = dataclasses.replace(
                    decoder.decode(em), model=name, decoder=decoder.name
                )
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
        out = {
            key: batch[key]
            for key in batch
            if key not in ("w2v2_emissions", "w2v2_model", "w2v2_error", "w2v2_fatal")
        }
        out.update(
            w2v2_status=status,
            w2v2_error=errors,
            w2v2_fatal=fatal,
            w2v2_duration=durations,
            w2v2_outputs=outputs,
            w2v2_transcript=transcripts,
        )
        return out


def _item(batch: dict[str, np.ndarray], k: int) -> AudioItem:
    return AudioItem(
        Path(str(batch["w2v2_path"][k])),
        str(batch["w2v2_id"][k]),
        Path(str(batch["w2v2_out_base"][k])),
    )


def pipeline(ds: ray.data.Dataset, plan: StagePlan, rate: int, write: bool) -> ray.data.Dataset:
    """The three stages over a dataset of input rows (see the module docstring)."""
    cwd = os.getcwd()
    ds = ds.map(_decode, fn_kwargs={"rate": rate, "cwd": cwd}, num_cpus=DECODE_CPUS)
    model_stage = {
        "fn_constructor_kwargs": {"options": plan.options, "cwd": cwd},
        "batch_size": FILES_PER_CALL,
        "batch_format": "numpy",
        "concurrency": (1, plan.actors),
        "num_cpus": plan.model_cpus,
        "num_gpus": plan.model_gpus or None,
    }
    # Ray Data restarts dead actors (always) and retries their batches: MODEL_RETRIES
    # times, given as a remote argument, which Ray 2.60 calls deprecated without naming
    # another way; a Ray without it retries for ever, its default.
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            ds = ds.map_batches(_ModelStage, **model_stage, max_task_retries=MODEL_RETRIES)
    except TypeError:
        ds = ds.map_batches(_ModelStage, **model_stage)
    return ds.map_batches(
        _FinishStage,
        fn_constructor_kwargs={"options": plan.options, "write": write, "cwd": cwd},
        batch_size=1,
        batch_format="numpy",
        concurrency=(1, plan.decoders),
        num_cpus=plan.decoder_cpus,
    )
