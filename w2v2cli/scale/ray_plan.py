"""How a ``--ray`` run is sized on a cluster (pure: no Ray import).

``plan_stages`` turns the run's options and the cluster's CPUs and GPUs into the number
and resources of each stage's actors (``ray_stages``), so that one of each stage always
fits and Ray Data never waits forever for resources.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError
from ..options import RunOptions

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


@dataclass(frozen=True)
class StagePlan:
    """How the stages are sized on the cluster at hand."""

    options: RunOptions  # with the device and threads each model actor uses
    actors: int
    model_cpus: float
    model_gpus: float
    decoders: int
    decoder_cpus: float


def plan_stages(
    options: RunOptions,
    ray_options: RayOptions,
    cpus: float,
    gpus: float,
    node_cpus: float | None = None,
) -> StagePlan:
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
    return StagePlan(run_options, actors, model_cpus, model_gpus, decoders, decoder_cpus)
