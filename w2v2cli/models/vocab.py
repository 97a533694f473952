"""Build and validate a model's CTC ``Vocabulary`` from its tokenizer, once, at load time.

Like pyctcdecode's ``alphabet.py``: find the blank, the word delimiter and the special
tokens, and fail early with a clear message on anything surprising.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError
from ..records import Vocabulary


def vocabulary_from_tokenizer(
    tokenizer: Any, vocab_size: int | None = None, blank_id: int | None = None
) -> Vocabulary:
    """Read the id → token table, the blank, the delimiter and the special ids from a
    transformers tokenizer (see ``vocabulary_from_table``).

    ``blank_id`` is the model's own blank where its config names one
    (``config.blank_token_id``: Omnilingual ASR's ``<s>`` = 0, Parakeet's last id); without
    it the blank is the tokenizer's pad token, as for wav2vec2.
    """
    n = len(tokenizer)
    tokens = list(tokenizer.convert_ids_to_tokens(list(range(n))))
    tokens = [t if isinstance(t, str) else "" for t in tokens]
    if blank_id is None:
        blank_id = tokenizer.pad_token_id
    if blank_id is None:
        raise ModelError("the tokenizer has no pad token, which CTC models use as the blank")
    return vocabulary_from_table(
        tokens,
        int(blank_id),
        getattr(tokenizer, "word_delimiter_token", None),
        set(getattr(tokenizer, "all_special_ids", []) or []),
        vocab_size,
    )


def vocabulary_from_table(
    tokens: list[str],
    blank_id: int,
    delimiter: str | None,
    special_ids: set[int],
    vocab_size: int | None = None,
) -> Vocabulary:
    """Validate an id → token table into a ``Vocabulary``.

    ``vocab_size`` is the model's output size; when the table has fewer entries (some
    checkpoints pad the head), the extra ids become special tokens that never print. The
    blank is special; the word delimiter is a boundary, not a special token to hide.
    """
    n = len(tokens)
    if vocab_size is not None and vocab_size < n:
        raise ModelError(
            f"the model outputs {vocab_size} classes but the tokenizer has {n} tokens; "
            "model and tokenizer do not belong together"
        )
    size = max(n, vocab_size or 0)
    tokens = list(tokens) + [f"<extra_{i}>" for i in range(n, size)]
    delimiter_id = tokens.index(delimiter) if delimiter in tokens else None
    special = set(special_ids) | set(range(n, size)) | {blank_id}
    # transformers 5 lists the word delimiter among special tokens; it is a boundary, not
    # a token to hide, so it is handled by delimiter_id instead.
    if delimiter_id is not None:
        special.discard(delimiter_id)
    return Vocabulary(
        tokens=tuple(tokens),
        blank_id=int(blank_id),
        delimiter_id=delimiter_id,
        special_ids=frozenset(int(i) for i in special),
    )
