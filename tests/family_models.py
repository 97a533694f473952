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


# --- The subword CTC families (issue 25): mel-feature front ends and word pieces --------

#: English words the tiny tokenizers are trained on (pieces of a few hundred at most).
CORPUS_WORDS = (
    "the a an and of to in on at with for from by over under into about after before "
    "cat dog bird fish horse mouse zebra lion tiger bear fox wolf sheep goat cow "
    "sat ran jumps walks talks sings reads writes sleeps eats drinks plays works "
    "quick brown lazy quiet loud small large green red blue yellow black white "
    "mat house garden river mountain city street school station market kitchen "
    "one two three four five six seven eight nine ten hundred thousand "
    "morning evening night today tomorrow yesterday hour minute second week "
    "speech model record file sound voice word letter sentence story music "
    "doctor patient nurse heart blood pressure medicine hospital clinic"
).split()


def corpus_lines(count: int = 600, seed: int = 0) -> list[str]:
    """``count`` made-up English sentences over ``CORPUS_WORDS`` (lower case)."""
    import random

    rng = random.Random(seed)
    return [
        " ".join(rng.choice(CORPUS_WORDS) for _ in range(rng.randint(3, 10))) for _ in range(count)
    ]


def _trained_pieces(kind: str, specials: list[str], size: int) -> Any:
    """A ``tokenizers.Tokenizer`` trained on ``corpus_lines``: ``kind`` "bpe" or
    "unigram", SentencePiece-style (``▁`` before each word), ``specials`` first."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer: Any = trainers.BpeTrainer(vocab_size=size, special_tokens=specials)
    else:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=size, special_tokens=specials, unk_token="<unk>"
        )
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator(corpus_lines(), trainer)
    return tok


def _unigram_scores(tok: Any) -> list[tuple[str, float]]:
    return [(str(p), float(s)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]


def subword_tokenizer(family: str) -> Any:
    """The tokenizer of a ``family`` model folder, trained here, as the hub folders have it:

    - ``parakeet_ctc``: ``ParakeetTokenizer`` over SentencePiece-style BPE pieces with
      ``▁`` (``<unk>`` = 0), the blank ``<pad>`` added last (id = vocabulary size - 1);
    - ``lasr_ctc``: ``LasrTokenizer`` over Unigram pieces with ``▁``, ``<pad>`` = 0 (the
      blank), ``</s>`` = 1, ``<unk>`` = 2;
    - ``omniasr_ctc``: ``ParakeetTokenizer`` over Unigram pieces that start with a literal
      space instead of ``▁``, ``<s>`` = 0 (the blank, ``config.blank_token_id``),
      ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import LasrTokenizer, ParakeetTokenizer

    if family == "parakeet_ctc":
        tok = _trained_pieces("bpe", ["<unk>"], 160)
        out = ParakeetTokenizer(tokenizer_object=tok, unk_token="<unk>")
        out.add_special_tokens({"pad_token": "<pad>"})
        return out
    if family == "lasr_ctc":
        scores = _unigram_scores(_trained_pieces("unigram", ["<pad>", "</s>", "<unk>"], 160))
        return LasrTokenizer(vocab=scores, extra_ids=0)
    if family == "omniasr_ctc":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        scores = _unigram_scores(_trained_pieces("unigram", specials, 160))
        spaced = [(p.replace("▁", " "), s) for p, s in scores]
        tok = Tokenizer(models.Unigram(spaced, unk_id=3, byte_fallback=False))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=" ", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement=" ", prepend_scheme="always")
        return ParakeetTokenizer(
            tokenizer_object=tok,
            bos_token="<s>",
            pad_token="<pad>",
            eos_token="</s>",
            unk_token="<unk>",
        )
    raise ValueError(f"no subword family {family!r}")


#: The tiny encoders: hidden size 32, 2 layers, 2 heads (config keys of each family's
#: inner config: ``encoder_config`` or OmniASR's ``audio_config``).
SUBWORD_ENCODERS: dict[str, dict[str, Any]] = {
    "parakeet_ctc": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "subsampling_conv_channels": 8,
        "conv_kernel_size": 9,
    },
    "lasr_ctc": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "subsampling_conv_channels": 16,
        "conv_kernel_size": 7,
    },
    "omniasr_ctc": {
        "model_type": "omniasr_audio",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (32,) * 7,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
}
SUBWORD_FAMILIES = tuple(SUBWORD_ENCODERS)


def _calibrate_subword_head(model: Any, inputs: dict, blank: int, starts: list[int]) -> None:
    """As ``calibrate_head``, for a ``ctc_head`` (a 1x1 convolution or a linear layer):
    each class's logit is standardised over the frames of noise (``inputs``), so that many
    pieces win somewhere (a random head on a tiny encoder picks the same two or three),
    then scaled up; word-initial pieces (``starts``) are biased to win about 25% of
    frames and the blank 40%, so that it writes short words, as a trained model does."""
    import torch

    head = model.ctc_head
    with torch.no_grad():
        logits = model(**inputs).logits[0]
        mean, std = logits.mean(0), logits.std(0)
        std = torch.maximum(std, std.median())  # no class scaled up from nearly nothing
        shape = (-1,) + (1,) * (head.weight.dim() - 1)
        head.weight.mul_((4.0 / std).view(shape))
        head.bias.sub_(mean).mul_(4.0 / std)
        for tokens, share in ((starts, 0.25), ([blank], 0.4)):
            logits = model(**inputs).logits[0]
            chosen = torch.zeros(logits.shape[1], dtype=torch.bool)
            chosen[tokens] = True
            margin = logits[:, ~chosen].max(-1).values - logits[:, chosen].max(-1).values
            head.bias[chosen] += float(torch.quantile(margin, share))


def subword_folder(family: str, path: Path, *, seed: int = 0, **config_overrides: Any) -> Path:
    """A tiny random-weight CTC model folder of ``family`` (``parakeet_ctc``, ``lasr_ctc``,
    ``omniasr_ctc``) at ``path``, saved the way the hub folders are: the model, the
    feature extractor and the trained tokenizer (``subword_tokenizer``) through the
    family's processor's ``save_pretrained``. ``config_overrides`` go to the inner config
    (``encoder_config``/``audio_config``) where it has the key, else to the CTC config.
    Its head favours the blank (about 40% of frames on noise), so it writes short runs of
    pieces. Nothing is downloaded; well under 2 s."""
    import torch
    import transformers
    from conftest import noise_audio

    torch.manual_seed(seed)
    tokenizer = subword_tokenizer(family)
    inner = dict(SUBWORD_ENCODERS[family])
    outer: dict[str, Any] = {"vocab_size": len(tokenizer)}
    if family == "parakeet_ctc":
        outer["pad_token_id"] = tokenizer.pad_token_id
        names = ("ParakeetEncoderConfig", "ParakeetCTCConfig", "ParakeetFeatureExtractor")
        processor_name = "ParakeetProcessor"
    elif family == "lasr_ctc":
        outer["pad_token_id"] = tokenizer.pad_token_id
        names = ("LasrEncoderConfig", "LasrCTCConfig", "LasrFeatureExtractor")
        processor_name = "LasrProcessor"
    else:
        outer["blank_token_id"] = tokenizer.bos_token_id
        outer["pad_token_id"] = tokenizer.pad_token_id
        names = ("OmniASRAudioConfig", "OmniASRCTCConfig", "OmniASRFeatureExtractor")
        processor_name = "OmniASRCTCProcessor"
    inner_class = getattr(transformers, names[0])
    for key, value in config_overrides.items():
        if key in inner or hasattr(inner_class(), key):
            inner[key] = value
        else:
            outer[key] = value
    key = "audio_config" if family == "omniasr_ctc" else "encoder_config"
    config = getattr(transformers, names[1])(**{key: inner, **outer})
    model = transformers.AutoModelForCTC.from_config(config).eval()
    extractor = getattr(transformers, names[2])()
    noise = extractor(noise_audio(8.0, seed=99), sampling_rate=16000, return_tensors="pt")
    blank = outer.get("blank_token_id", outer["pad_token_id"])
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    starts = [i for i, p in enumerate(pieces) if p[:1] in ("▁", " ") and len(p) > 1]
    _calibrate_subword_head(model, dict(noise), int(blank), starts)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    getattr(transformers, processor_name)(
        feature_extractor=extractor, tokenizer=tokenizer
    ).save_pretrained(path)
    return path
