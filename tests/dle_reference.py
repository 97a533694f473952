"""Checkpoints and reference outputs from NVIDIA's own wav2vec 2.0 code, once per session.

``reference/nvidia_reference.py`` runs NVIDIA DeepLearningExamples' code (vendored
unmodified in ``reference/nvidia_dle``) in a subprocess: it builds small random checkpoints
in their exact format, the "plain" model's weights also in fairseq's two layouts (``cfg``
and old ``args``, each with its ``dict.ltr.txt``), and runs every test clip through their
inference path. ``test_nvidia.py`` and ``test_fairseq.py`` compare w2v2 with that.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import noise_audio

REFERENCE = Path(__file__).parent / "reference" / "nvidia_reference.py"
LETTERS = "| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()
LABELS = "".join(f"{s} {10000 - 10 * i}\n" for i, s in enumerate(LETTERS))
SMALL = {
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2,
    "encoder_layers": 3,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "conv_feature_layers": "[(32,10,5)]+[(32,3,2)]*4+[(32,2,2)]+[(32,2,2)]",
}
#: Blank (0) and "|" (4) favoured, <pad> </s> <unk> disfavoured, so that the random
#: models write short words, as a trained CTC model does.
HEAD_BIAS = {"0": 3.0, "4": 2.5, "1": -5.0, "2": -5.0, "3": -5.0}
#: name → (overrides of NVIDIA's arguments, seed, extra bias of "|"). "plain" is shaped
#: like their large models (layer-norm extractor, normalised input, layers with the norm
#: first, PyTorch attention), which their inference.py cannot run: the reference uses
#: their training-time forward for it (see nvidia_reference.py).
MODELS = {
    "hourglass": ({"hourglass_transformer": "[1,(2,2),1]"}, 0, 0.0),
    "linear": (
        {"hourglass_transformer": "[1,(2,3),1]", "hourglass_resample": "linear", "conv_bias": True},
        1,
        2.0,
    ),
    "plain": (
        {"layer_norm_first": True, "mha": "pyt", "extractor_mode": "layer_norm", "normalize": True},
        2,
        0.0,
    ),
}
#: fairseq's blank_weight in the cfg-layout copy of "plain" (fairseq adds it to the
#: blank's logit before the softmax).
FAIRSEQ_BLANK_WEIGHT = 0.5
CLIP_SECONDS = [1.0, 2.3, 0.7, 3.1]
SPECIALS = re.compile(r"<s>|</s>|<unk>|<pad>")


@dataclass
class Reference:
    folder: Path
    checkpoints: dict[str, Path]
    fairseq: dict[str, Path]  # "cfg" and "args" layouts of "plain", dict.ltr.txt beside
    clips: list[Path]
    log_probs: dict[str, list[np.ndarray]]
    texts: dict[str, list[str]]


def run_reference(job: dict, folder: Path) -> None:
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # tiny models: one thread is fastest
    done = subprocess.run(
        [sys.executable, str(REFERENCE), str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def build_reference(folder: Path) -> Reference:
    clips, arrays = [], {}
    for i, seconds in enumerate(CLIP_SECONDS):
        samples = noise_audio(seconds, seed=20 + i)
        clips.append(folder / f"clip{i}.wav")
        sf.write(clips[-1], samples, 16000, subtype="FLOAT")
        arrays[str(i)] = samples
    np.savez(folder / "audio.npz", **arrays)
    checkpoints = {name: folder / f"{name}.pt" for name in MODELS}
    fairseq = {
        "cfg": folder / "fairseq-cfg" / "plain.pt",
        "args": folder / "fairseq-args" / "plain.pt",
    }
    make = []
    for name, (args, seed, delimiter) in MODELS.items():
        entry = {
            "path": str(checkpoints[name]),
            "args": {**SMALL, **args},
            "labels": LABELS,
            "seed": seed,
            "head_scale": 4.0,
            "head_bias": {**HEAD_BIAS, "4": HEAD_BIAS["4"] + delimiter},
        }
        if name == "plain":
            entry.update(
                fairseq_cfg=str(fairseq["cfg"]),
                fairseq_args=str(fairseq["args"]),
                dicts=[str(p.with_name("dict.ltr.txt")) for p in fairseq.values()],
                blank_weight=FAIRSEQ_BLANK_WEIGHT,
            )
        make.append(entry)
    for path in fairseq.values():
        path.parent.mkdir()
    job = {
        "make": make,
        "infer": {
            "audio": str(folder / "audio.npz"),
            "out": str(folder / "ref.npz"),
            "checkpoints": {n: str(p) for n, p in checkpoints.items()},
        },
    }
    run_reference(job, folder)
    ref = np.load(folder / "ref.npz")
    log_probs = {n: [ref[f"{n}/{i}"] for i in range(len(clips))] for n in MODELS}
    texts = json.loads((folder / "ref.json").read_text())
    return Reference(folder, checkpoints, fairseq, clips, log_probs, texts)


def clean(text: str) -> str:
    """NVIDIA's greedy text as w2v2 writes it: no special symbols, single spaces."""
    return " ".join(SPECIALS.sub("", text).split())


def with_blank_weight(log_probs: np.ndarray, weight: float) -> np.ndarray:
    """fairseq's ``blank_weight`` (added to the blank's logit) applied to log-probs."""
    shifted = log_probs.astype(np.float64)
    shifted[:, 0] += weight
    top = shifted.max(-1, keepdims=True)
    return (shifted - top - np.log(np.exp(shifted - top).sum(-1, keepdims=True))).astype(np.float32)
