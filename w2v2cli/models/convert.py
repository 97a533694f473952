"""Checkpoint files → model folders: ``w2v2 convert`` and ``-m checkpoint.pt``.

``read_converted`` reads a checkpoint safely (``checkpoints.read_checkpoint``), tells
NVIDIA DeepLearningExamples from fairseq, and maps it (``nvidia.py``, ``fairseq.py``).
``build_model`` loads the mapped weights into the transformers model with a strict
check: every weight of the model must come from the checkpoint. ``write_folder`` saves
the model, the vocabulary (``vocab.json``: fairseq's ``<s>`` and ``<pad>`` swap names, as
transformers' converter does, so the blank, output 0, is the tokenizer's pad token) and
the feature extractor; the folder is written atomically.

The folder is a plain ``Wav2Vec2ForCTC`` folder that transformers itself loads, unless
the model has an hourglass encoder (``hourglass.py``: a folder w2v2 loads). When the
checkpoint normalises its input, ``preprocessor_config.json`` also records fairseq's
epsilon (``w2v2cli_normalize_eps``), which w2v2 uses; transformers alone ignores it and
normalises with its own 1e-7.

``converted_folder`` is what ``-m checkpoint.pt`` uses: the conversion is done once and
kept in the Hugging Face cache folder under ``w2v2cli-converted/``, keyed by the
checkpoint's size, modification time, first and last MiB, the dictionary's content and
``CONVERTER_VERSION``. A cached folder that cannot be used (a JSON file missing or not
JSON, a weights file missing or cut short: ``entry_problem``) is set aside, said so in one
line, and converted again; converting and repairing happen under the entry's lock
(``fsutil.locked``), so two runs that find it missing or damaged convert it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, OutputError
from ..fsutil import atomic_dir, check_output_dir, locked, remove_leftovers, set_aside
from .checkpoints import NORMALIZE_EPS, ConvertedCheckpoint, read_checkpoint
from .fairseq import from_fairseq
from .hub import quiet_hub_logging
from .nvidia import from_nvidia, is_nvidia

log = logging.getLogger("w2v2cli")

#: Bump when a conversion changes in a way that makes older cached folders wrong.
CONVERTER_VERSION = 1
CACHE_FOLDER = "w2v2cli-converted"
#: The dictionary a fairseq checkpoint is fine-tuned with, found beside it by default.
DICTIONARY_NAME = "dict.ltr.txt"
NORMALIZE_EPS_KEY = "w2v2cli_normalize_eps"
#: What ``entry_problem`` says of a cached conversion that does not exist.
MISSING = "missing"
#: The JSON files of a converted folder (``write_folder``).
FOLDER_JSON = ("config.json", "vocab.json", "preprocessor_config.json")

KINDS = {"nvidia": "NVIDIA DeepLearningExamples", "fairseq": "fairseq"}


@dataclass(frozen=True)
class ConversionResult:
    """What ``convert_checkpoint`` wrote: the folder, the source kind and the model type."""

    folder: Path
    kind: str
    model_type: str
    transformers_loadable: bool
    notes: tuple[str, ...] = ()


def is_checkpoint_file(name: str | Path) -> bool:
    """``-m`` names a file (a checkpoint to convert) rather than a folder or hub id."""
    return Path(name).expanduser().is_file()


def default_dictionary(checkpoint: Path) -> Path:
    return checkpoint.parent / DICTIONARY_NAME


def read_converted(path: Path, dictionary: Path | None = None) -> ConvertedCheckpoint:
    """Read and map a checkpoint file (NVIDIA DLE or fairseq)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    state = read_checkpoint(path)
    if is_nvidia(state):
        if dictionary is not None:
            raise ModelError(
                f"{path} is an NVIDIA checkpoint, whose labels are inside it; "
                "--dict is for fairseq checkpoints"
            )
        return from_nvidia(state, str(path))
    if "cfg" in state or "args" in state:
        dictionary = Path(dictionary) if dictionary is not None else default_dictionary(path)
        if not dictionary.is_file():
            raise ModelError(
                f"{path} is a fairseq checkpoint; its letter dictionary "
                f"{dictionary} was not found (give it with --dict)"
            )
        try:
            text = dictionary.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{dictionary}: cannot read the dictionary: {exc}") from None
        return from_fairseq(state, text, str(path), str(dictionary))
    keys = ", ".join(sorted(map(str, state))[:5])
    raise ModelError(
        f"{path}: not an NVIDIA DeepLearningExamples or fairseq checkpoint (its "
        f"top-level keys: {keys}); a transformers model is a folder: give "
        "that"
    )


def build_model(converted: ConvertedCheckpoint, where: str) -> Any:
    """The transformers model with the converted weights, every weight accounted for."""
    import torch  # deferred: converting needs torch; reading the cache does not

    quiet_hub_logging()
    config = model_config(converted)
    if converted.model_type == "hourglass":
        from .hourglass import Wav2Vec2HourglassForCTC, register  # deferred: imports torch

        register()
        model = Wav2Vec2HourglassForCTC(config)
    else:
        from transformers import Wav2Vec2ForCTC

        model = Wav2Vec2ForCTC(config)
    expected = model.state_dict()
    weights = {}
    for key, value in converted.state_dict.items():
        if key not in expected:
            raise ModelError(f"{where}: mapped weight {key} does not exist in the model")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ModelError(
                f"{where}: weight {key} has shape {tuple(value.shape)}, the model "
                f"expects {tuple(expected[key].shape)}"
            )
        weights[key] = value.to(torch.float32)
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ModelError(
            f"{where}: the checkpoint lacks {len(missing)} weight(s) of the "
            f"model, e.g. {missing[0]}"
        )
    model.load_state_dict(weights, strict=True)
    model.eval()
    return model


def model_config(converted: ConvertedCheckpoint) -> Any:
    if converted.model_type == "hourglass":
        from .hourglass import Wav2Vec2HourglassConfig  # deferred: imports torch

        return Wav2Vec2HourglassConfig(**converted.config)
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(**converted.config)


def hf_tokens(tokens: tuple[str, ...]) -> list[str]:
    """fairseq's table with ``<s>`` and ``<pad>`` names swapped: output 0, the blank, is
    then the tokenizer's pad token (transformers' converter does the same)."""
    out = list(tokens)
    out[0], out[1] = tokens[1], tokens[0]
    return out


def write_folder(converted: ConvertedCheckpoint, model: Any, out_dir: Path) -> Path:
    """Save ``model`` with its tokenizer and feature extractor into a new folder."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    tokens = hf_tokens(converted.tokens)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        vocab = tmp / "vocab.json"
        vocab.write_text(
            json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8"
        )
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab),
            unk_token="<unk>",
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
            word_delimiter_token="|",
            do_lower_case=False,
        )
        tokenizer.save_pretrained(tmp)
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=converted.sampling_rate,
            padding_value=0.0,
            do_normalize=converted.normalize,
            return_attention_mask=converted.config.get("feat_extract_norm") == "layer",
        )
        extractor.save_pretrained(tmp)
        if converted.normalize:
            path = tmp / "preprocessor_config.json"
            data = json.loads(path.read_text(encoding="utf-8"))
            data[NORMALIZE_EPS_KEY] = NORMALIZE_EPS
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out_dir


def convert_checkpoint(
    path: Path,
    out_dir: Path,
    dictionary: Path | None = None,
    notify: Callable[[str], None] | None = None,
) -> ConversionResult:
    """Read, map, build and save a checkpoint as a model folder (``w2v2 convert``)."""
    notify = notify or log.info
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise OutputError(f"{out_dir} already exists; convert writes a new folder")
    check_output_dir(out_dir, "output folder")
    converted = read_converted(Path(path), dictionary)
    notify(
        f"{path}: {KINDS[converted.kind]} checkpoint" + "".join(f"; {n}" for n in converted.notes)
    )
    model = build_model(converted, str(path))
    write_folder(converted, model, out_dir)
    return ConversionResult(
        out_dir,
        converted.kind,
        converted.model_type,
        converted.model_type == "wav2vec2",
        converted.notes,
    )


def cache_key(path: Path, dictionary: Path | None) -> str:
    """What a cached conversion depends on (see the module docstring)."""
    h = hashlib.sha256(f"converter={CONVERTER_VERSION}\n".encode())
    st = path.stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), 2)
            h.update(f.read(1 << 20))
    if dictionary is not None and dictionary.is_file():
        h.update(b"\ndict\n" + dictionary.read_bytes())
    return h.hexdigest()[:20]


def cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir) / CACHE_FOLDER
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / CACHE_FOLDER


def _safetensors_problem(path: Path) -> str | None:
    """Whether a ``.safetensors`` file is whole: its header reads, and the file is as long
    as the header says (a file cut short is not)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if length <= 0 or 8 + length > size:
                return f"{path.name} has no valid header"
            header = json.loads(f.read(length))
        end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return f"{path.name} has no valid header"
    if size != 8 + length + end:
        return f"{path.name} has {size} bytes, {8 + length + end} expected"
    return None


def entry_problem(folder: Path) -> str | None:
    """Why the cached conversion ``folder`` cannot be used, judged from its files:
    ``MISSING`` where there is none, a reason where it is damaged, None where it is whole."""
    if not folder.exists():
        return MISSING
    for name in FOLDER_JSON:
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError):
            return f"{name} is not valid JSON"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "its weights file is missing"
    for path in weights:
        problem = _safetensors_problem(path)
        if problem is not None:
            return problem
    return None


def cached_conversion(path: Path, cache_dir: Path | None) -> Path | None:
    """The cached folder of ``path`` when it was converted before and is whole, else None."""
    path = Path(path).expanduser()
    dictionary = default_dictionary(path)
    folder = cache_root(cache_dir) / cache_key(path, dictionary)
    return folder if entry_problem(folder) is None else None


def converted_folder(
    path: Path, cache_dir: Path | None = None, notify: Callable[[str], None] | None = None
) -> Path:
    """The model folder of checkpoint ``path``, converted on first use and cached; a
    cached folder that cannot be used is set aside and converted again."""
    path = Path(path).expanduser()
    cached = cached_conversion(path, cache_dir)
    if cached is not None:
        return cached
    notify = notify or log.info
    dictionary = default_dictionary(path)
    target = cache_root(cache_dir) / cache_key(path, dictionary)
    waiting = f"waiting for another run that is converting {path}"
    locking = True
    try:
        with locked(target.parent / f".{target.name}.lock", lambda: notify(waiting)):
            locking = False
            remove_leftovers(target)  # of runs killed while writing it
            problem = entry_problem(target)
            if problem is None:  # converted meanwhile by another run
                return target
            if problem != MISSING:
                notify(
                    f"the cached conversion {target} of {path} cannot be used ({problem}); "
                    "it is set aside and converted again"
                )
                set_aside(target)
            converted = read_converted(path)
            notify(
                f"converting {path} ({KINDS[converted.kind]} checkpoint) once; the result "
                f"is cached in {target.parent}"
            )
            model = build_model(converted, str(path))
            write_folder(converted, model, target)
    except OutputError as exc:
        if not locking:
            raise
        raise OutputError(f"{path} cannot be converted into the cache: {exc}") from None
    return target
