"""Writes fairseq-dictconfig-cfg.pt: a fairseq checkpoint's ``cfg`` pickled as omegaconf
objects (``DictConfig``, ``ListConfig``, value nodes, an ``argparse.Namespace`` inside, as
fairseq's ``allow_objects`` hack permits), without weights. ``tests/test_fairseq.py``
reads it without omegaconf installed: w2v2's reader maps those classes to inert stand-ins.

Run with omegaconf 2.x importable (``pip install --target DIR omegaconf`` and
``PYTHONPATH=DIR``): ``python tests/assets/make_fairseq_dictconfig.py``. The expected plain
reading is ``EXPECTED`` below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXPECTED = {
    "_name": None,
    "common": {"fp16": False, "seed": 1},
    "model": {
        "_name": "wav2vec_ctc",
        "w2v_path": "/pretrained.pt",
        "normalize": True,
        "blank_weight": 0.0,
        "blank_mode": "add",
        "w2v_args": {
            "model": {
                "_name": "wav2vec2",
                "encoder_layers": 2,
                "encoder_embed_dim": 16,
                "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 2",
                "latent_temp": [2.0, 0.5, 0.999995],
                "layer_type": "transformer",
            },
            "task": {"_name": "audio_pretraining", "normalize": True, "sample_rate": 16000},
        },
        "extra": {"a": 1, "b": "x"},  # an argparse.Namespace in the pickle
    },
    "task": {"_name": "audio_finetuning", "normalize": True, "labels": "ltr"},
}


def main() -> None:
    import torch
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(EXPECTED, flags={"allow_objects": True})
    cfg.model.extra = argparse.Namespace(a=1, b="x")
    torch.save({"cfg": cfg, "model": {}}, Path(__file__).with_name("fairseq-dictconfig-cfg.pt"))


if __name__ == "__main__":
    main()
