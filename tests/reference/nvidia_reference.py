"""NVIDIA DeepLearningExamples' own wav2vec 2.0 code as the reference for w2v2's reading of
their checkpoints (tests/test_nvidia.py runs this script in a subprocess).

The code under ``nvidia_dle/`` is NVIDIA's, unmodified (see its README.md for the source
commit and licence). It needs only torch once three imports are stubbed: ``numba`` (its
``jit`` decorator, used by batch samplers), ``librosa`` (spectrogram features) and apex's
``amp_C`` (fused optimisers); none of them is on the inference path of a waveform model.
Their ``common.fairseq_fake_modules`` puts fake ``fairseq`` modules into ``sys.modules``,
which is why this runs in its own process.

One JSON job (``python nvidia_reference.py JOB.json``) does two things:

``make``: for each entry, a small random checkpoint in their exact format, built with
their code: their argument parser's defaults for fine-tuning plus the pre-training model
arguments (as ``wav2vec2.utils.update_args_for_finetuning`` merges them), the entry's
overrides, their ``Wav2VecEncoder``/``Wav2VecCtc`` in training configuration (plain
``nn.Sequential`` conv blocks, weight-normed positional convolution), and the dictionary
``Checkpointer.maybe_save`` (common/helpers.py) writes: ``args`` (``args.__dict__``),
``model`` (the state dict), ``output_labels`` (the letter dictionary text) and the
optimiser/scaler/train-state entries. The CTC head is scaled up so that random outputs
change from frame to frame (``head_scale``), as the tests' other tiny models do.

With ``fairseq_cfg`` / ``fairseq_args`` (and ``dicts``), the same weights are also written
in fairseq's own checkpoint layout (NVIDIA's model is fairseq's wav2vec 2.0, forked: the
weight names are fairseq's): ``cfg`` as fairseq ≥ 0.10 saves it (``OmegaConf.to_container``
of the config: plain dicts, ``model`` with ``_name: wav2vec_ctc`` and the pre-training
config in ``w2v_args``), or ``args`` as older fairseq saves it (an ``argparse.Namespace``
with ``arch: wav2vec_ctc`` and the pre-training ``w2v_args`` namespace), with the
optimizer history and extra state fairseq's trainer adds, and the labels as
``dict.ltr.txt``. Their reference output is that of the NVIDIA checkpoint with the same
weights (fairseq itself is not installed; ``blank_weight`` is applied by the test).

``infer``: their inference path, the steps of ``inference.py``'s ``main()`` at the
vendored commit, in order: ``torch.load`` of the checkpoint, ``get_ckpt_args``, the
inference argument parser, fp32 positional convolution and conv norms, the labels from
``output_labels`` (``Dictionary.load``), ``update_args_for_finetuning``,
``masked_feature_extractor = True``, ``build_model(args, "infer", dictionary)``,
``load_wrapped_state``, ``remove_conv_wn``, the masked forward methods, ``eval()``; per
file (batch size 1, as their data loader gives it with ``--batch_size 1``): the dataset's
``postprocess`` (``F.layer_norm`` when ``normalize``), the model, ``get_normalized_probs``,
greedy ``argmax``, ``gather_predictions(blank_id=0)`` and the word separator replaced by a
space. Written: each file's log-probabilities and text.

One exception: their ``inference.py`` cannot run models with the ``layer_norm`` feature
extractor (``masked_feature_extractor`` builds ``MaskedBlock``s only for the ``default``
mode, and ``masked_forward`` then calls the ``nn.Sequential`` blocks with two arguments:
a TypeError). For those, the forward their training uses for validation is run instead
(``Wav2VecCtc.forward`` → ``Wav2VecEncoder.forward`` → ``extract_features``), with the same
labels, log-probabilities and greedy decoding.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent / "nvidia_dle"


def _stub_imports() -> None:
    for name in ("numba", "librosa", "amp_C"):
        module = types.ModuleType(name)
        if name == "numba":
            module.jit = lambda *a, **k: lambda f: f
        sys.modules[name] = module
    sys.path.insert(0, str(HERE))


def _training_args(overrides: dict) -> argparse.Namespace:
    import wav2vec2.arg_parser as ap

    parser = argparse.ArgumentParser()
    ap.populate_finetuning(parser)
    ap.populate_common(parser)
    args = parser.parse_args(["--output_dir", "unused", "--w2v_path", "pretrained.pt"])
    pretrain = argparse.ArgumentParser()
    ap.populate_pretraining(pretrain)
    for key, value in vars(pretrain.parse_args([])).items():
        setattr(args, key, value)
    args.mode = "finetune"  # what `python train.py finetune ...` parses; marks an NV ckpt
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


#: fairseq Wav2Vec2Config fields (fairseq/models/wav2vec/wav2vec2.py) that NVIDIA's
#: pre-training parser also has, copied into the fairseq layouts' model configuration.
FAIRSEQ_MODEL_FIELDS = (
    "extractor_mode",
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
    "activation_fn",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "encoder_layerdrop",
    "dropout_input",
    "dropout_features",
    "final_dim",
    "layer_norm_first",
    "conv_feature_layers",
    "conv_bias",
    "logit_temp",
    "quantize_targets",
    "quantize_input",
    "target_glu",
    "feature_grad_mult",
    "quantizer_depth",
    "quantizer_factor",
    "latent_vars",
    "latent_groups",
    "latent_dim",
    "mask_length",
    "mask_prob",
    "mask_selection",
    "mask_other",
    "no_mask_overlap",
    "mask_min_space",
    "mask_channel_length",
    "mask_channel_prob",
    "mask_channel_before",
    "mask_channel_selection",
    "mask_channel_other",
    "no_mask_channel_overlap",
    "mask_channel_min_space",
    "num_negatives",
    "negatives_from_everywhere",
    "cross_sample_negatives",
    "codebook_negatives",
    "conv_pos",
    "conv_pos_groups",
    "latent_temp",
)


def save_fairseq(args: argparse.Namespace, state_dict: dict, entry: dict) -> None:
    import torch

    model = {k: getattr(args, k) for k in FAIRSEQ_MODEL_FIELDS}
    model.update(layer_type="transformer", pos_conv_depth=1, required_seq_len_multiple=2)
    common = {"_name": None, "fp16": False, "seed": 1}
    task = {
        "_name": "audio_finetuning",
        "data": "/data",
        "labels": "ltr",
        "normalize": bool(args.normalize),
        "sample_rate": 16000,
        "enable_padding": False,
    }
    trainer = {
        "optimizer_history": [
            {
                "criterion_name": "CtcCriterion",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": 1.0},
                "num_updates": 1,
            }
        ],
        "task_state": {},
        "criterion": None,
        "last_optimizer_state": None,
        "extra_state": {
            "epoch": 1,
            "previous_training_time": 1.0,
            "train_iterator": {"epoch": 1, "iterations_in_epoch": 1, "shuffle": True},
        },
    }
    if entry.get("fairseq_cfg"):
        w2v_args = {
            "_name": None,
            "common": common,
            "model": {"_name": "wav2vec2", **model},
            "task": {**task, "_name": "audio_pretraining"},
        }
        cfg = {
            "_name": None,
            "common": common,
            "task": task,
            "criterion": {"_name": "ctc"},
            "model": {
                "_name": "wav2vec_ctc",
                "w2v_path": "/pretrained.pt",
                "normalize": bool(args.normalize),
                "apply_mask": True,
                "final_dropout": 0.0,
                "blank_weight": entry.get("blank_weight", 0.0),
                "blank_mode": "add",
                "w2v_args": w2v_args,
            },
        }
        torch.save({"cfg": cfg, "model": state_dict, **trainer}, entry["fairseq_cfg"])
    if entry.get("fairseq_args"):
        w2v_args = argparse.Namespace(
            arch="wav2vec2", task="audio_pretraining", normalize=bool(args.normalize), **model
        )
        old = argparse.Namespace(
            arch="wav2vec_ctc",
            task="audio_pretraining",
            criterion="ctc",
            data="/data",
            labels="ltr",
            normalize=bool(args.normalize),
            sample_rate=16000,
            w2v_path="/pretrained.pt",
            apply_mask=True,
            final_dropout=0.0,
            w2v_args=w2v_args,
        )
        torch.save({"args": old, "model": state_dict, **trainer}, entry["fairseq_args"])
    for path in entry.get("dicts", []):
        Path(path).write_text(entry["labels"], encoding="utf-8")


def make(entry: dict) -> None:
    import torch
    from common.fairseq.data import Dictionary
    from common.utils import AttrDict
    from wav2vec2.model import Wav2VecCtc, Wav2VecEncoder

    torch.manual_seed(entry.get("seed", 0))
    args = _training_args(entry["args"])
    labels = entry["labels"]
    dictionary = Dictionary.load(io.StringIO(labels))
    cfg = AttrDict(vars(args))
    model = Wav2VecCtc(cfg, Wav2VecEncoder(cfg, None, output_size=len(dictionary)))
    with torch.no_grad():
        proj = model.w2v_encoder.proj
        proj.weight.mul_(entry.get("head_scale", 1.0))
        for index, bias in entry.get("head_bias", {}).items():
            proj.bias[int(index)] += bias
    state = {
        "args": args.__dict__,
        "model": model.state_dict(),
        "ema_model": None,
        "optimizer": None,
        "scaler": None,
        "train_state": {"step": 1, "epoch": 1, "best_val_wer": 1.0, "best_val_loss": 1.0},
        "output_labels": labels,
    }
    torch.save(state, entry["path"])
    save_fairseq(args, state["model"], entry)


def infer(checkpoint: str, audio: list) -> tuple[list, list[str]]:
    import numpy as np
    import torch
    import wav2vec2.arg_parser
    import wav2vec2.utils
    from common.fairseq.data import Dictionary
    from common.fairseq.data.audio.raw_audio_dataset import RawAudioDataset
    from common.helpers import gather_predictions, load_wrapped_state

    parser = argparse.ArgumentParser(description="wav2vec2.0 inference")
    wav2vec2.arg_parser.populate_infer(parser)
    args = parser.parse_args(
        ["--w2v_path", checkpoint, "--output_dir", "unused", "--cpu", "--batch_size", "1"]
    )

    ckpt = torch.load(args.w2v_path, map_location=torch.device("cpu"))
    train_args = wav2vec2.utils.get_ckpt_args(ckpt)
    assert "mode" in train_args  # is_nv_ckpt
    args.fp32_pos_conv = True
    args.fp32_conv_norms = True
    f = io.StringIO(ckpt["output_labels"])
    target_dictionary = Dictionary.load(f)
    f.close()
    w2v_path_for_args = args.w2v_path_for_args or args.w2v_path
    wav2vec2.utils.update_args_for_finetuning(args, w2v_path_for_args)
    inference_path = args.extractor_mode == "default"  # see the module docstring
    args.masked_feature_extractor = inference_path
    model, *_ = wav2vec2.utils.build_model(args, "infer", target_dictionary)
    load_wrapped_state(model, ckpt["model"])
    model.w2v_encoder.w2v_model.remove_conv_wn()
    if inference_path:
        model.w2v_encoder.w2v_model.feature_extractor.forward = (
            model.w2v_encoder.w2v_model.feature_extractor.masked_forward
        )
        model.w2v_encoder.forward = model.w2v_encoder.infer
        model.w2v_encoder.w2v_model.forward = model.w2v_encoder.w2v_model.infer
    model.eval()

    dataset = types.SimpleNamespace(sample_rate=args.sample_rate, normalize=args.normalize)
    log_probs, preds = [], []
    for samples in audio:
        source = RawAudioDataset.postprocess(dataset, torch.from_numpy(samples), 16000)
        source = source[None]
        padding_mask = torch.zeros(source.shape, dtype=torch.bool)
        with torch.no_grad():
            if inference_path:
                enc_out, padding_mask = model(source, padding_mask)
            else:
                out = model(source, padding_mask)
                enc_out, padding_mask = out["encoder_out"], out["padding_mask"]
            logp = model.get_normalized_probs(enc_out, padding_mask, log_probs=True).contiguous()
            pred = logp.argmax(dim=-1, keepdim=False).int()
        pred = pred.transpose(0, 1)
        preds += gather_predictions([pred], target_dictionary, blank_id=0)
        log_probs.append(np.asarray(logp[:, 0].numpy(), dtype=np.float32))
    tdict = target_dictionary
    preds = [p.replace(tdict[tdict.nspecial], " ") for p in preds]
    return log_probs, preds


def main() -> None:
    import numpy as np

    job = json.loads(Path(sys.argv[1]).read_text())
    _stub_imports()
    for entry in job.get("make", []):
        make(entry)
    if "infer" in job:
        audio_file = np.load(job["infer"]["audio"])
        audio = [audio_file[k] for k in sorted(audio_file.files, key=int)]
        results: dict[str, np.ndarray] = {}
        texts: dict[str, list[str]] = {}
        for name, checkpoint in job["infer"]["checkpoints"].items():
            log_probs, preds = infer(checkpoint, audio)
            for i, lp in enumerate(log_probs):
                results[f"{name}/{i}"] = lp
            texts[name] = preds
        np.savez(job["infer"]["out"], **results)
        Path(job["infer"]["out"]).with_suffix(".json").write_text(json.dumps(texts))


if __name__ == "__main__":
    main()
