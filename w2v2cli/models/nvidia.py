"""NVIDIA DeepLearningExamples wav2vec 2.0 checkpoints (``PyTorch/SpeechRecognition/wav2vec2``).

Their ``Checkpointer`` saves a dictionary: ``args`` (every training argument as a plain
dict; ``mode`` marks a checkpoint of their code), ``model`` (the state dict: keys
``w2v_encoder.w2v_model....`` and ``w2v_encoder.proj....``; an hourglass encoder stores its
layers as ``encoder.layers``, ``encoder.hourglass_layers``, ``encoder.post_layers`` and
``linear`` resampling as ``encoder.{down,up}sample_layer.linear``) and ``output_labels``
(the fairseq letter dictionary text). It loads with ``torch.load(weights_only=True)``.

What their ``inference.py`` does is what w2v2 does: ``normalize`` from the arguments
(``F.layer_norm`` of each input), index 0 as the blank, ``|`` as the word separator. Their
inference does not read ``blank_weight`` from the checkpoint (it keeps the parser's
default, 0), so neither does w2v2.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from ..errors import ModelError
from .checkpoints import ConvertedCheckpoint
from .fairseq import complete_projection, map_weights, read_dictionary, wav2vec2_config


def is_nvidia(state: Mapping[str, Any]) -> bool:
    """A checkpoint written by NVIDIA's code (its ``args`` dict has ``mode``)."""
    args = state.get("args")
    return isinstance(args, dict) and "mode" in args


def hourglass_shape(spec: Any, where: str) -> tuple[int, int, int, int]:
    """``"[n_pre,(n_short,factor),n_post]"`` → ``(n_pre, n_short, factor, n_post)``."""
    try:
        n_pre, (n_short, factor), n_post = ast.literal_eval(str(spec))
        values = (int(n_pre), int(n_short), int(factor), int(n_post))
    except (ValueError, TypeError, SyntaxError):
        raise ModelError(
            f"{where}: cannot read hourglass_transformer {spec!r} (expected "
            "[n_pre,(n_short,factor),n_post])"
        ) from None
    if min(values) < 0 or values[2] < 1:
        raise ModelError(f"{where}: hourglass_transformer {spec!r} is out of range")
    return values


def from_nvidia(state: Mapping[str, Any], where: str) -> ConvertedCheckpoint:
    """An NVIDIA DLE fine-tuned checkpoint → ``ConvertedCheckpoint``."""
    args = dict(state["args"])
    if args.get("mode") == "pretrain":
        raise ModelError(
            f"{where}: a pre-trained NVIDIA checkpoint (mode "
            f"{args.get('mode')!r}) has no CTC head: it needs CTC fine-tuning "
            "before it can transcribe"
        )
    labels = state.get("output_labels")
    if not isinstance(labels, str):
        raise ModelError(
            f"{where}: the NVIDIA checkpoint has no output_labels (its letter dictionary)"
        )
    tokens = read_dictionary(labels, f"{where} (output_labels)")
    model_state = state.get("model")
    if not isinstance(model_state, Mapping):
        raise ModelError(f"{where}: the NVIDIA checkpoint has no model weights")
    # load_wrapped_state: weights saved from a DistributedDataParallel wrapper
    model_state = {k.replace("module.", ""): v for k, v in model_state.items()}
    weights = map_weights(model_state, where)
    head = weights["lm_head.weight"]
    if head.shape[0] != len(tokens):
        raise ModelError(
            f"{where}: the CTC head has {head.shape[0]} outputs but output_labels "
            f"has {len(tokens)} symbols"
        )
    config = wav2vec2_config(args, len(tokens), where)
    complete_projection(weights, config)
    if "wav2vec2.masked_spec_embed" in weights:
        config["mask_time_prob"] = 0.05  # transformers' default; keeps masked_spec_embed
    else:
        config["mask_time_prob"] = 0.0
    model_type = "wav2vec2"
    notes: list[str] = []
    if args.get("hourglass_transformer"):
        n_pre, n_short, factor, n_post = hourglass_shape(args["hourglass_transformer"], where)
        resample = args.get("hourglass_resample") or "naive"
        if resample not in ("naive", "linear"):
            raise ModelError(f"{where}: hourglass_resample {resample!r} is not naive or linear")
        if config["do_stable_layer_norm"]:
            raise ModelError(
                f"{where}: an hourglass encoder with layer_norm_first is not "
                "something NVIDIA's code builds"
            )
        model_type = "hourglass"
        config.update(
            hourglass_layers=[n_pre, n_short, n_post],
            hourglass_factor=factor,
            hourglass_resample=resample,
        )
        notes.append(
            f"hourglass encoder [{n_pre},({n_short},{factor}),{n_post}], {resample} resampling"
        )
    return ConvertedCheckpoint(
        kind="nvidia",
        model_type=model_type,
        config=config,
        state_dict=weights,
        tokens=tokens,
        normalize=bool(args.get("normalize", False)),
        sampling_rate=int(args.get("sample_rate") or 16000),
        notes=tuple(notes),
    )
