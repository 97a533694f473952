"""Build and validate a model's CTC ``Vocabulary`` from its tokenizer, once, at load time.

Like pyctcdecode's ``alphabet.py``: find the blank, the word delimiter and the special
tokens, and fail early with a clear message on anything surprising.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..records import Vocabulary


def vocabulary_from_tokenizer(tokenizer: Any, vocab_size: int | None = None) -> Vocabulary:
    """Read the id → token table, the blank (pad), the delimiter and the special ids from a
    transformers tokenizer (see ``vocabulary_from_table``)."""
    n = len(tokenizer)
    tokens = list(tokenizer.convert_ids_to_tokens(list(range(n))))
    tokens = [t if isinstance(t, str) else "" for t in tokens]
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


def load_vocabulary(
    model: str, cache_dir: str | None = None, language: str | None = None
) -> Vocabulary:
    """A model's ``Vocabulary`` from its tokenizer alone: no weights are loaded (``lm build``).
    ``language`` picks one of an MMS model's vocabularies (``languages.py``).

    A hub id is read from the cache when it is there, and fails at once when it is not and
    the hub cannot be reached (see ``hub.py``); a checkpoint file is converted (once,
    ``convert.converted_folder``).
    """
    from transformers import AutoTokenizer

    from . import hub
    from .loading import is_local

    hub.quiet_hub_logging()
    source = model
    if not is_local(model):
        snapshot = hub.cached_snapshot(model, cache_dir)
        if snapshot is not None:
            source = str(snapshot)
        elif (reason := hub.unreachable_reason()) is not None:
            raise ModelError(
                f"model {model!r} is not a local folder and is not in the Hugging Face cache, "
                f"and it cannot be downloaded ({reason})"
            )
    elif Path(model).expanduser().is_file():  # a checkpoint: its converted folder
        from .convert import converted_folder

        source = str(converted_folder(Path(model), cache_dir))
    elif not Path(model).expanduser().is_dir():
        raise ModelError(f"model folder {model!r} does not exist")
    from .languages import check_language, vocab_file, vocab_languages

    check_language(model, vocab_languages(vocab_file(source)), language)
    kwargs = {"target_lang": language} if language else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loading failure is this model's fault
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load the tokenizer of {model}: {text}") from None
    if not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ModelError(f"{model} has no CTC tokenizer (vocab.json)")
    return vocabulary_from_tokenizer(tokenizer)
