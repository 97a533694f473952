"""A model given as one file OpenVINO reads: an IR (``.xml`` with its ``.bin``) or ``.onnx``.

Such a file holds the network only, as the Open Model Zoo's ``omz_downloader`` +
``omz_converter`` give it for the model card ``wav2vec2-base``
(``public/wav2vec2-base/FP32/wav2vec2-base.xml``, and ``FP16/``): one input ``inputs``
(B x N normalised samples, dynamic), one output ``logits`` (B x N x 32), nothing beside it.
What the rest of the tool needs besides the network comes from the card (facebook's
wav2vec2-base-960h, which the card converts):

- **the alphabet** (``CARD_TOKENS``): the card lists ``[pad]``, ``[s]``, ``[/s]``,
  ``[unk]``, ``|``, E, T, A, ... Z; the checkpoint's own ``vocab.json`` spells the special
  tokens ``<pad>``, ``<s>``, ``</s>``, ``<unk>``, as here (they never print). ``<pad>`` =
  id 0 is the CTC blank and ``|`` the word separator. A ``vocab.json`` beside the file is
  read instead (``vocabulary_beside``), validated as any tokenizer's;
- **the normalisation**: zero mean and unit variance per input, as the checkpoint's
  ``Wav2Vec2FeatureExtractor`` (``do_normalize``, epsilon 1e-7; the OMZ demo divides by the
  standard deviation + 1e-15: the same to float32 rounding on anything but silence) at
  16 kHz;
- **the frame geometry** of wav2vec2-base's feature encoder (``CONV_KERNEL``,
  ``CONV_STRIDE``: 320 samples a frame, 400 for the first), which word times use. The
  backend checks it against the network itself when it opens the file
  (``inference/openvino_backend.py``, ``open_model_file``) and refuses a file whose frame
  counts differ, in one line.

Nothing here imports OpenVINO, torch or transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError
from ..records import Vocabulary
from .vocab import vocabulary_from_table

#: The card's alphabet, id by id (its special tokens spelled as the checkpoint's vocab.json).
CARD_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "|",
    *"ETAONIHSRDLUMWCFGYPBVK'XJQZ",
)
CARD_BLANK = "<pad>"
CARD_DELIMITER = "|"
#: wav2vec2-base's feature encoder: 7 convolutions, 320 samples a frame.
CONV_KERNEL: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
SAMPLING_RATE = 16000
#: The card's model type (``families.py``: wav2vec 2.0).
MODEL_TYPE = "wav2vec2"

#: Suffixes of the files OpenVINO reads as a network: an IR (``.xml`` + ``.bin``), ONNX.
IR_SUFFIX = ".xml"
ONNX_SUFFIX = ".onnx"
#: Tokens a ``vocab.json`` beside the file may name its blank with, in this order.
BLANK_NAMES = ("<pad>", "[pad]", "<blank>", "[blank]")
#: Special tokens of wav2vec2-style vocabularies, in both spellings.
SPECIAL_NAMES = frozenset(
    ("<pad>", "<s>", "</s>", "<unk>", "[pad]", "[s]", "[/s]", "[unk]", "<blank>", "[blank]")
)


def card_vocabulary() -> Vocabulary:
    """The card's alphabet as a ``Vocabulary`` (blank ``<pad>``, delimiter ``|``)."""
    specials = {i for i, t in enumerate(CARD_TOKENS) if t in SPECIAL_NAMES}
    return vocabulary_from_table(list(CARD_TOKENS), 0, CARD_DELIMITER, specials)


def vocabulary_beside(vocab: Path) -> Vocabulary:
    """The ``Vocabulary`` of a ``vocab.json`` lying beside the model file, without a
    tokenizer config: a flat token → id table whose ids run from 0 once each; its blank is
    the first of ``BLANK_NAMES`` it has, its delimiter ``|`` where it has one. Anything else
    is a one-line ``ModelError`` naming the file."""
    try:
        table = json.loads(vocab.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(f"{vocab} cannot be read as a JSON token table: {reason}") from None
    if not isinstance(table, dict) or not table:
        raise ModelError(f"{vocab} is not a token -> id table")
    if all(isinstance(v, dict) for v in table.values()):
        raise ModelError(f"{vocab} holds one vocabulary per language; a model file takes one")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in table.values()):
        raise ModelError(f"{vocab} is not a token -> id table (an id is not an integer)")
    ids = sorted(table.values())
    if ids != list(range(len(ids))):
        raise ModelError(f"{vocab}: its ids must run from 0 to {len(ids) - 1}, each once")
    tokens = [""] * len(ids)
    for token, i in table.items():
        tokens[i] = token
    blank = next((t for t in BLANK_NAMES if t in table), None)
    if blank is None:
        raise ModelError(
            f"{vocab} has no pad token ({' or '.join(BLANK_NAMES[:2])}), which CTC models "
            "use as the blank"
        )
    specials = {i for i, t in enumerate(tokens) if t in SPECIAL_NAMES}
    try:
        return vocabulary_from_table(tokens, table[blank], CARD_DELIMITER, specials)
    except ModelError as exc:
        raise ModelError(f"{vocab}: {exc}") from None


def output_size_problem(classes: int, vocabulary: Vocabulary, vocab: Path | None) -> str | None:
    """What is wrong when the network outputs ``classes`` scores per frame for this
    alphabet (the card's, or ``vocab`` beside the file); None when they match."""
    if classes == vocabulary.size:
        return None
    alphabet = (
        f"the alphabet of {vocab}" if vocab is not None else "the wav2vec2-base card's alphabet"
    )
    return f"it outputs {classes} classes per frame, but {alphabet} has {vocabulary.size} tokens"
