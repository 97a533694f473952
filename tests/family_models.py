"""Tiny random CTC models of every transformers family w2v2 runs, saved like hub models
(``save_pretrained`` + tokenizer + feature extractor). Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import VOCAB

#: Shared by every family: hidden size 32, 2 layers, a 7-layer conv front end (320
#: samples per frame), a 16-tap positional convolution.
COMMON: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32,) * 7,
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "pad_token_id": 0,
    "vocab_size": len(VOCAB),
}

#: family → (config class, model class, extra config, whether padding is exact).
FAMILIES: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "conformer": (
        "Wav2Vec2ConformerConfig",
        "Wav2Vec2ConformerForCTC",
        {"conv_depthwise_kernel_size": 7},
        False,
    ),
    "conformer-rotary": (
        "Wav2Vec2ConformerConfig",
        "Wav2Vec2ConformerForCTC",
        {
            "conv_depthwise_kernel_size": 7,
            "position_embeddings_type": "rotary",
            "feat_extract_norm": "layer",
            "do_stable_layer_norm": True,
        },
        False,
    ),
    "sew": ("SEWConfig", "SEWForCTC", {"squeeze_factor": 2}, False),
    "sew-d": (
        "SEWDConfig",
        "SEWDForCTC",
        {"squeeze_factor": 2, "position_buckets": 16, "max_position_embeddings": 64},
        False,
    ),
    "unispeech": ("UniSpeechConfig", "UniSpeechForCTC", {}, True),
    "unispeech-sat": (
        "UniSpeechSatConfig",
        "UniSpeechSatForCTC",
        {"feat_extract_norm": "layer", "do_stable_layer_norm": True},
        True,
    ),
    "data2vec-audio": (
        "Data2VecAudioConfig",
        "Data2VecAudioForCTC",
        {"conv_pos_kernel_size": 5, "num_conv_pos_embeddings": 5},
        False,
    ),
    "hubert": ("HubertConfig", "HubertForCTC", {}, True),
    "wavlm": (
        "WavLMConfig",
        "WavLMForCTC",
        {
            "num_buckets": 32,
            "max_bucket_distance": 100,
            "feat_extract_norm": "layer",
            "do_stable_layer_norm": True,
        },
        True,
    ),
    # W2V-BERT 2.0: 80-bin filterbank input stacked in pairs (320 samples per frame), and
    # with its adapter (640 samples per frame; the adapter is not padding-exact).
    "w2v-bert": (
        "Wav2Vec2BertConfig",
        "Wav2Vec2BertForCTC",
        {"conv_depthwise_kernel_size": 7},
        True,
    ),
    "w2v-bert-adapter": (
        "Wav2Vec2BertConfig",
        "Wav2Vec2BertForCTC",
        {
            "conv_depthwise_kernel_size": 7,
            "add_adapter": True,
            "output_hidden_size": 32,
            "num_adapter_layers": 1,
        },
        False,
    ),
}
#: Config keys W2V-BERT does not take (no convolutional front end).
_CONV_KEYS = (
    "conv_dim",
    "conv_stride",
    "conv_kernel",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
)


def calibrate_head(model: Any, inputs: dict, blank: int, delimiter: int) -> None:
    """Scale the random CTC head up (outputs that change from frame to frame) and bias it
    so that on noise (``inputs``) about 40% of frames are blank and 25% word boundaries,
    whatever the family's output statistics: short words, as a trained model writes."""
    import torch

    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
        logits = model(**inputs).logits[0]
        for token, share in ((blank, 0.4), (delimiter, 0.25)):
            others = logits.clone()
            others[:, token] = -torch.inf
            margin = others.max(-1).values - logits[:, token]
            bias = float(torch.quantile(margin, share))
            model.lm_head.bias[token] += bias
            logits[:, token] += bias


def save_family_model(folder: Path, family: str, seed: int = 0) -> Path:
    """A tiny random model of ``family`` whose head favours blank and "|", so that it
    writes short words (as ``conftest.save_tiny_model`` does for wav2vec2)."""
    import torch
    import transformers
    from conftest import noise_audio
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
    )

    config_name, model_name, extra, _ = FAMILIES[family]
    torch.manual_seed(seed)
    fbank = config_name == "Wav2Vec2BertConfig"
    common = {k: v for k, v in COMMON.items() if not (fbank and k in _CONV_KEYS)}
    config = getattr(transformers, config_name)(**{**common, **extra})
    model = getattr(transformers, model_name)(config).eval()
    if fbank:
        extractor = SeamlessM4TFeatureExtractor(
            feature_size=80, num_mel_bins=80, sampling_rate=16000, stride=2
        )
    else:
        layer_norm = getattr(config, "feat_extract_norm", "layer") == "layer"
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=layer_norm,
        )
    noise = extractor(noise_audio(3.0, seed=99), sampling_rate=16000, return_tensors="pt")
    calibrate_head(model, dict(noise), VOCAB.index("<pad>"), VOCAB.index("|"))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    ).save_pretrained(folder)
    return folder


#: An MMS-style model's languages: English upper case (the base weights' head), and a
#: French vocabulary of another size with accented lower-case letters.
MMS_VOCABS = {
    "eng": VOCAB,
    "fra": ["<pad>", "<s>", "</s>", "<unk>", "|", *"esaitnrulodcmpéèvqfbghjàxyêzçôùâ'"],
}


def save_mms_model(folder: Path, seed: int = 0) -> Path:
    """A tiny MMS-style model: wav2vec2 (norm-first layers) with attention adapters, the
    base weights carrying English, ``adapter.<code>.safetensors`` per language (adapter
    weights and CTC head), a nested ``vocab.json`` and a tokenizer whose default is eng."""
    import torch
    from conftest import noise_audio
    from safetensors.torch import save_file
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
    )

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        **{**COMMON, "vocab_size": len(VOCAB)},
        adapter_attn_dim=8,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    noise = dict(extractor(noise_audio(3.0, seed=99), sampling_rate=16000, return_tensors="pt"))
    folder.mkdir(parents=True, exist_ok=True)
    for code, vocab in MMS_VOCABS.items():
        model = Wav2Vec2ForCTC(Wav2Vec2Config(**{**config.to_dict(), "vocab_size": len(vocab)}))
        model.eval()
        calibrate_head(model, noise, vocab.index("<pad>"), vocab.index("|"))
        adapters = {k: v.detach().contiguous() for k, v in model._get_adapters().items()}
        save_file(adapters, str(folder / f"adapter.{code}.safetensors"))
        if code == "eng":
            model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    nested = {code: {t: i for i, t in enumerate(v)} for code, v in MMS_VOCABS.items()}
    (folder / "vocab.json").write_text(json.dumps(nested, ensure_ascii=False), encoding="utf-8")
    Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token="<unk>",
        pad_token="<pad>",
        word_delimiter_token="|",
        target_lang="eng",
    ).save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(nested, ensure_ascii=False), encoding="utf-8")
    return folder
