"""fairseq-style wav2vec 2.0 weights, configs and letter dictionaries in transformers' terms.

fairseq and NVIDIA DeepLearningExamples (which forked fairseq's wav2vec 2.0) name weights
the same way; this module holds what both share:

- ``read_dictionary``: fairseq's ``Dictionary.load`` (``dict.ltr.txt``, or NVIDIA's
  ``output_labels``): ``<s> <pad> </s> <unk>`` first, then one ``SYMBOL COUNT`` per line,
  ``#fairseq:overwrite`` honoured, duplicates refused. fairseq's CTC decoding uses index 0
  (``<s>``) as the blank and ``|`` as the word separator.
- ``map_weights``: the weight-name mapping of transformers' converter
  (``convert_wav2vec2_original_pytorch_checkpoint_to_pytorch.py``: ``post_extract_proj``
  → ``feature_projection.projection``, ``self_attn.*_proj`` → ``attention.*_proj``, ``fc1``
  → ``feed_forward.intermediate_dense``, ``w2v_encoder.proj`` → ``lm_head``, ...), written
  as explicit patterns so that an unknown weight is refused instead of dropped, plus the
  hourglass layers and the conv-block names of NVIDIA's masked inference modules.
- ``wav2vec2_config``: model arguments (``encoder_embed_dim``, ``conv_feature_layers``,
  ``extractor_mode``, ``layer_norm_first``, ...) → ``Wav2Vec2Config`` keyword arguments,
  refusing what transformers' wav2vec2 cannot express (conformer layers, unknown
  extractor modes, deeper positional convolutions, rotary embeddings, spectrogram input).
- ``from_fairseq``: a fairseq fine-tuned checkpoint (``cfg``, or ``args`` in older ones)
  with its dictionary → ``ConvertedCheckpoint``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ModelError
from .checkpoints import ConvertedCheckpoint, conv_layers, plain

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
#: wav2vec 2.0's feature encoder, the default of fairseq's ``conv_feature_layers``.
DEFAULT_CONV_LAYERS = "[(512,10,5)]+[(512,3,2)]*4+[(512,2,2)]+[(512,2,2)]"

#: fairseq activation names → transformers' ACT2FN names (same functions).
ACTIVATIONS = {
    "gelu": "gelu",
    "relu": "relu",
    "gelu_accurate": "gelu_new",
    "tanh": "tanh",
    "linear": "linear",
    "swish": "swish",
}


def read_dictionary(text: str, where: str) -> tuple[str, ...]:
    """fairseq's ``Dictionary.load`` of ``text``: the id → symbol table."""
    symbols = list(SPECIALS)
    index = {s: i for i, s in enumerate(symbols)}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line:
            continue
        try:
            word, count = line.rsplit(" ", 1)
            overwrite = count == "#fairseq:overwrite"
            if overwrite:
                word, count = word.rsplit(" ", 1)
            int(count)
        except ValueError:
            raise ModelError(f"{where}:{number}: expected 'SYMBOL COUNT', got {raw!r}") from None
        if word in index and not overwrite:
            raise ModelError(f"{where}:{number}: symbol {word!r} appears twice")
        if word not in index:
            index[word] = len(symbols)
            symbols.append(word)
    if len(symbols) == len(SPECIALS):
        raise ModelError(f"{where}: the dictionary has no symbols")
    return tuple(symbols)


_LAYER = r"encoder\.(layers|hourglass_layers|post_layers)\.(\d+)\."
_HF_LAYER = r"wav2vec2.encoder.\1.\2."
_CONV = r"feature_extractor\.conv_layers\.(\d+)\."
_HF_CONV = r"wav2vec2.feature_extractor.conv_layers.\1."
_POS = "wav2vec2.encoder.pos_conv_embed.conv."
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (_CONV + r"(?:0|conv)\.(weight|bias)", _HF_CONV + r"conv.\2"),
        (_CONV + r"(?:2|2\.1|norm|norm\._group_norm)\.(weight|bias)", _HF_CONV + r"layer_norm.\2"),
        (r"layer_norm\.(weight|bias)", r"wav2vec2.feature_projection.layer_norm.\1"),
        (r"post_extract_proj\.(weight|bias)", r"wav2vec2.feature_projection.projection.\1"),
        (r"mask_emb", r"wav2vec2.masked_spec_embed"),
        (r"encoder\.pos_conv\.0\.bias", _POS + "bias"),
        (r"encoder\.pos_conv\.0\.weight_g", _POS + "parametrizations.weight.original0"),
        (r"encoder\.pos_conv\.0\.weight_v", _POS + "parametrizations.weight.original1"),
        (r"encoder\.layer_norm\.(weight|bias)", r"wav2vec2.encoder.layer_norm.\1"),
        (
            _LAYER + r"self_attn\.(q|k|v|out)_proj\.(weight|bias)",
            _HF_LAYER + r"attention.\3_proj.\4",
        ),
        (_LAYER + r"self_attn_layer_norm\.(weight|bias)", _HF_LAYER + r"layer_norm.\3"),
        (_LAYER + r"fc1\.(weight|bias)", _HF_LAYER + r"feed_forward.intermediate_dense.\3"),
        (_LAYER + r"fc2\.(weight|bias)", _HF_LAYER + r"feed_forward.output_dense.\3"),
        (_LAYER + r"final_layer_norm\.(weight|bias)", _HF_LAYER + r"final_layer_norm.\3"),
        (
            r"encoder\.(upsample|downsample)_layer\.linear\.(weight|bias)",
            r"wav2vec2.encoder.\1.linear.\2",
        ),
    ]
]
#: Pre-training heads: present in some fine-tuned checkpoints, never used for CTC.
_PRETRAINING = re.compile(
    r"(quantizer|input_quantizer|project_q|project_inp|final_proj|"
    r"target_glu)\."
)
MODEL_PREFIX = "w2v_encoder.w2v_model."
HEAD_PREFIX = "w2v_encoder.proj."


def map_weights(state_dict: Mapping[str, Any], where: str) -> dict[str, Any]:
    """fairseq CTC weights (``w2v_encoder.w2v_model.*``, ``w2v_encoder.proj.*``) under
    transformers' ``Wav2Vec2ForCTC`` names. An unknown weight is refused."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.startswith(HEAD_PREFIX):
            out["lm_head." + key[len(HEAD_PREFIX) :]] = value
            continue
        if not key.startswith(MODEL_PREFIX):
            raise ModelError(
                f"{where}: unexpected weight {key!r}: not a wav2vec 2.0 CTC model "
                f"(expected {MODEL_PREFIX}... and {HEAD_PREFIX}...)"
            )
        name = key[len(MODEL_PREFIX) :]
        if _PRETRAINING.match(name):
            continue
        if name == "encoder.pos_conv.0.weight":  # stored without weight norm: split it
            g = torch.linalg.vector_norm(value, dim=(0, 1), keepdim=True)
            out["wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = g
            out["wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1"] = value
            continue
        for pattern, replacement in _RULES:
            match = pattern.fullmatch(name)
            if match:
                out[match.expand(replacement)] = value
                break
        else:
            raise ModelError(
                f"{where}: weight {key!r} has no counterpart in transformers' "
                "wav2vec2; this model has parts w2v2 does not know"
            )
    if "lm_head.weight" not in out:
        raise ModelError(
            f"{where}: no CTC head (w2v_encoder.proj): a pre-trained model needs "
            "CTC fine-tuning before it can transcribe"
        )
    return out


def _get(args: Mapping[str, Any], key: str, default: Any) -> Any:
    value = args.get(key, default)
    return default if value is None else value


def wav2vec2_config(args: Mapping[str, Any], vocab_size: int, where: str) -> dict[str, Any]:
    """``Wav2Vec2Config`` keyword arguments for a fairseq/NVIDIA model's arguments."""
    mode = _get(args, "extractor_mode", "default")
    if mode not in ("default", "layer_norm"):
        raise ModelError(
            f"{where}: extractor_mode {mode!r} is not supported (default and layer_norm are)"
        )
    layer_type = _get(args, "layer_type", "transformer")
    if layer_type != "transformer":
        raise ModelError(
            f"{where}: fairseq {layer_type} layers are not supported (only "
            "transformer layers map to transformers' wav2vec2)"
        )
    for flag, what in (
        ("rotary_embeddings", "rotary embeddings"),
        ("use_spectrogram_features", "spectrogram input features"),
        ("quantize_input", "quantised input"),
    ):
        if _get(args, flag, False):
            raise ModelError(f"{where}: models with {what} are not supported")
    if int(_get(args, "pos_conv_depth", 1)) != 1:
        raise ModelError(
            f"{where}: a positional convolution of depth "
            f"{args.get('pos_conv_depth')} is not supported (depth 1 is)"
        )
    activation = str(_get(args, "activation_fn", "gelu"))
    if activation not in ACTIVATIONS:
        raise ModelError(f"{where}: activation {activation!r} is not supported")
    layers = conv_layers(_get(args, "conv_feature_layers", DEFAULT_CONV_LAYERS), where)
    return {
        "vocab_size": int(vocab_size),
        "hidden_size": int(_get(args, "encoder_embed_dim", 768)),
        "num_hidden_layers": int(_get(args, "encoder_layers", 12)),
        "num_attention_heads": int(_get(args, "encoder_attention_heads", 12)),
        "intermediate_size": int(_get(args, "encoder_ffn_embed_dim", 3072)),
        "hidden_act": ACTIVATIONS[activation],
        "conv_dim": [d for d, _, _ in layers],
        "conv_kernel": [k for _, k, _ in layers],
        "conv_stride": [s for _, _, s in layers],
        "conv_bias": bool(_get(args, "conv_bias", False)),
        "feat_extract_norm": "group" if mode == "default" else "layer",
        "feat_extract_activation": "gelu",
        "num_conv_pos_embeddings": int(_get(args, "conv_pos", 128)),
        "num_conv_pos_embedding_groups": int(_get(args, "conv_pos_groups", 16)),
        "do_stable_layer_norm": bool(_get(args, "layer_norm_first", False)),
        "layer_norm_eps": 1e-5,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def complete_projection(weights: dict[str, Any], config: Mapping[str, Any]) -> None:
    """fairseq has no ``post_extract_proj`` when the conv output already has the encoder's
    width; transformers always has the projection, so it becomes the identity."""
    import torch

    key = "wav2vec2.feature_projection.projection.weight"
    if key not in weights:
        dim = int(config["hidden_size"])
        if int(config["conv_dim"][-1]) != dim:
            raise ModelError(
                "the checkpoint has no post_extract_proj, but the conv features "
                "and the encoder differ in width"
            )
        weights[key] = torch.eye(dim)
        weights["wav2vec2.feature_projection.projection.bias"] = torch.zeros(dim)


#: fairseq's fine-tuned CTC model names (``@register_model``); pre-training model names.
CTC_MODELS = ("wav2vec_ctc",)
PRETRAINED_MODELS = ("wav2vec2", "wav2vec")


def config_groups(state: Mapping[str, Any], where: str) -> tuple[dict, dict, dict, dict]:
    """``(fine-tune model, fine-tune task, pre-training model, pre-training task)`` argument
    dictionaries of a ``cfg`` (fairseq ≥ 0.10, groups ``model``/``task``) or old ``args``
    checkpoint (one flat namespace, the pre-training one in ``w2v_args``)."""
    if state.get("cfg") is not None:
        cfg = plain(state["cfg"])
        if not isinstance(cfg, dict):
            raise ModelError(f"{where}: cannot read the checkpoint's cfg")
        model, task = cfg.get("model") or {}, cfg.get("task") or {}
        name = model.get("_name")
    else:
        args = plain(state.get("args"))
        if not isinstance(args, dict):
            raise ModelError(f"{where}: cannot read the checkpoint's args")
        model = task = args
        name = args.get("arch")
    if name in PRETRAINED_MODELS or name is None and "w2v_args" not in model:
        raise ModelError(
            f"{where}: a pre-trained fairseq {name or 'wav2vec'} model has no CTC "
            "head: it needs CTC fine-tuning before it can transcribe"
        )
    if name not in CTC_MODELS:
        raise ModelError(
            f"{where}: a fairseq {name!r} model; only wav2vec 2.0 CTC fine-tunes "
            "(wav2vec_ctc) are supported"
        )
    w2v = plain(model.get("w2v_args"))
    if not isinstance(w2v, dict):
        raise ModelError(
            f"{where}: the checkpoint does not hold its model configuration "
            "(w2v_args); fairseq would read it from the pre-trained checkpoint "
            f"{model.get('w2v_path')!r}"
        )
    if isinstance(w2v.get("model"), dict):
        pre_model, pre_task = w2v["model"], w2v.get("task") or {}
    else:
        pre_model = pre_task = w2v
    pre_name = pre_model.get("_name") or pre_model.get("arch") or "wav2vec2"
    if pre_name != "wav2vec2":
        raise ModelError(
            f"{where}: a fine-tuned fairseq {pre_name!r} model; only wav2vec2 "
            "encoders are supported"
        )
    return model, task, pre_model, pre_task


def from_fairseq(
    state: Mapping[str, Any], dictionary: str, where: str, dictionary_where: str
) -> ConvertedCheckpoint:
    """A fine-tuned fairseq wav2vec 2.0 CTC checkpoint and its dictionary text: the model
    arguments from ``cfg`` (or old ``args``), the weights under transformers' names, the
    dictionary, ``normalize``, and ``blank_weight`` (fairseq adds it to the blank's logit;
    here it is added to the head's bias, the same thing)."""
    import torch

    model_cfg, task_cfg, pre_model, pre_task = config_groups(state, where)
    tokens = read_dictionary(dictionary, dictionary_where)
    weights_in = state.get("model")
    if not isinstance(weights_in, Mapping):
        raise ModelError(f"{where}: the checkpoint has no model weights")
    weights = map_weights(weights_in, where)
    head = weights["lm_head.weight"]
    if head.shape[0] != len(tokens):
        raise ModelError(
            f"{where}: the CTC head has {head.shape[0]} outputs but "
            f"{dictionary_where} has {len(tokens)} symbols (with <s> <pad> </s> "
            "<unk>): not this model's dictionary"
        )
    if _get(pre_model, "conv_pos_batch_norm", False):
        raise ModelError(f"{where}: a batch-normed positional convolution is not supported")
    config = wav2vec2_config(pre_model, len(tokens), where)
    complete_projection(weights, config)
    config["mask_time_prob"] = 0.05 if "wav2vec2.masked_spec_embed" in weights else 0.0
    blank_weight = float(_get(model_cfg, "blank_weight", 0.0))
    if blank_weight:
        if _get(model_cfg, "blank_mode", "add") != "add":
            raise ModelError(
                f"{where}: blank_mode {model_cfg.get('blank_mode')!r} is not supported (add is)"
            )
        bias = weights["lm_head.bias"].detach().clone().to(torch.float32)
        bias[0] += blank_weight
        weights["lm_head.bias"] = bias
    normalize = task_cfg.get("normalize")
    if normalize is None:
        normalize = pre_task.get("normalize", pre_model.get("normalize", False))
    notes = (f"blank_weight {blank_weight} added to the blank's bias",) if blank_weight else ()
    return ConvertedCheckpoint(
        kind="fairseq",
        model_type="wav2vec2",
        config=config,
        state_dict=weights,
        tokens=tokens,
        normalize=bool(normalize),
        sampling_rate=int(_get(task_cfg, "sample_rate", 16000)),
        notes=notes,
    )
