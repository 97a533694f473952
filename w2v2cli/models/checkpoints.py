"""Checkpoint files (``torch.save`` dictionaries): reading them without running pickled
code, and the record a conversion produces.

Loading never executes code from the file. ``read_checkpoint`` uses PyTorch's restricted
unpickler (``torch.load(weights_only=True)``), which rebuilds tensors and plain
containers only, and allows a few more classes by name: ``argparse.Namespace`` (the
``args`` of older fairseq checkpoints), and inert stand-ins for the omegaconf config
objects some fairseq checkpoints pickle (``DictConfig``, ``ListConfig``, their nodes and
metadata) and for fairseq's training meters. A stand-in only stores the state it is given;
omegaconf and fairseq are never imported. Any other class in the file is refused with one
line naming it.
"""

from __future__ import annotations

import argparse
import ast
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError

log = logging.getLogger("w2v2cli")


@dataclass(frozen=True)
class ConvertedCheckpoint:
    """A checkpoint read into transformers' terms, ready to be built and saved.

    ``kind`` is where it came from (``nvidia``, ``fairseq``); ``model_type`` what it
    becomes (``wav2vec2``: a plain ``Wav2Vec2ForCTC``; ``hourglass``:
    ``Wav2Vec2HourglassForCTC``); ``config`` the keyword arguments of the config class;
    ``state_dict`` the weights under transformers' names; ``tokens`` the id → symbol table
    in the checkpoint's own order (fairseq's dictionary: ``<s> <pad> </s> <unk>`` then the
    letters); ``normalize`` whether inputs are normalised to zero mean and unit variance
    (with ``F.layer_norm``'s epsilon, ``NORMALIZE_EPS``).
    """

    kind: str
    model_type: str
    config: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    tokens: tuple[str, ...]
    normalize: bool
    sampling_rate: int = 16000
    notes: tuple[str, ...] = ()


#: The model type of folders holding an hourglass model (``hourglass.py``): this package's
#: own, so that transformers alone refuses them rather than dropping the hourglass layers.
HOURGLASS_MODEL_TYPE = "w2v2cli-wav2vec2-hourglass"

#: fairseq and NVIDIA normalise input with ``F.layer_norm(x, x.shape)``: epsilon 1e-5
#: (transformers' ``Wav2Vec2FeatureExtractor`` uses 1e-7).
NORMALIZE_EPS = 1e-5


class _Inert:
    """Stands in for a pickled class we read but never run: keeps its state, nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __reduce__(self) -> Any:  # never pickled again
        raise TypeError("a stand-in cannot be pickled")


class DictConfigStandIn(_Inert):
    """``omegaconf.DictConfig``: its content is in ``_state["_content"]``."""


class ListConfigStandIn(_Inert):
    """``omegaconf.ListConfig``."""


class NodeStandIn(_Inert):
    """An omegaconf value node (``AnyNode``, ``StringNode``...): its value is ``_val``."""


class MetadataStandIn(_Inert):
    """omegaconf ``Metadata``/``ContainerMetadata`` and fairseq meters: ignored."""


_OMEGACONF_NODES = (
    "AnyNode",
    "StringNode",
    "IntegerNode",
    "FloatNode",
    "BooleanNode",
    "EnumNode",
    "BytesNode",
    "PathNode",
    "ValueNode",
)
_FAIRSEQ_METERS = (
    "AverageMeter",
    "TimeMeter",
    "StopwatchMeter",
    "MetersDict",
    "Meter",
    "SumMeter",
    "ConcatTensorMeter",
)


def _allowed_globals() -> list[Any]:
    import collections
    import typing

    # Classes omegaconf's pickles name as values or call to rebuild containers: plain
    # Python types, no code of the file's choosing.
    allowed: list[Any] = [argparse.Namespace, dict, list, int, collections.defaultdict]
    allowed += [
        (DictConfigStandIn, "omegaconf.dictconfig.DictConfig"),
        (ListConfigStandIn, "omegaconf.listconfig.ListConfig"),
        (MetadataStandIn, "omegaconf.base.Metadata"),
        (MetadataStandIn, "omegaconf.base.ContainerMetadata"),
        (typing.Any, "typing.Any"),
    ]
    allowed += [(NodeStandIn, f"omegaconf.nodes.{n}") for n in _OMEGACONF_NODES]
    for module in ("fairseq.logging.meters", "fairseq.meters"):
        allowed += [(MetadataStandIn, f"{module}.{n}") for n in _FAIRSEQ_METERS]
    return allowed


def plain(value: Any) -> Any:
    """A read config as plain Python: stand-ins and namespaces become dicts and lists."""
    if isinstance(value, DictConfigStandIn):
        state = value.__dict__.get("_state") or {}
        content = state.get("_content") if isinstance(state, dict) else None
        return {str(k): plain(v) for k, v in (content or {}).items()}
    if isinstance(value, ListConfigStandIn):
        state = value.__dict__.get("_state") or {}
        content = state.get("_content") if isinstance(state, dict) else None
        return [plain(v) for v in (content or [])]
    if isinstance(value, NodeStandIn):
        state = value.__dict__.get("_state")
        return plain(state.get("_val") if isinstance(state, dict) else None)
    if isinstance(value, _Inert):
        return None
    if isinstance(value, argparse.Namespace):
        return {k: plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's top-level dictionary, read without running pickled code (see the
    module docstring); ``ModelError`` with one line for anything else."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            try:  # memory-mapped: the weights are read as they are converted
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)  # old format
    except (pickle.UnpicklingError, RuntimeError) as exc:
        text = _unpickler_reason(str(exc))
        if any(
            m in text
            for m in (
                "GLOBAL",
                "unrecognized function",
                "Can only build",
                "Can only create new object",
            )
        ):
            raise ModelError(
                f"{path}: refused: the file pickles {_refused_global(text)}, which loading "
                "would have to run; w2v2 reads only tensors, plain containers and "
                "fairseq/omegaconf configs from checkpoints"
            ) from None
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({_short(text)})") from None
    except (OSError, EOFError, ValueError) as exc:
        reason = _short(str(exc)) or "the file ends too early"
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if not isinstance(state, dict):
        raise ModelError(
            f"{path}: a checkpoint should hold a dictionary, not a {type(state).__name__}"
        )
    return state


def _unpickler_reason(message: str) -> str:
    """The reason in one of torch's weights-only errors, without its boilerplate."""
    text = " ".join(message.split())
    for marker in ("WeightsUnpickler error:", "trusted source."):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.split(" Check the documentation")[0].strip()


def _refused_global(text: str) -> str:
    for marker in ("GLOBAL ", "unrecognized function ", "but got "):
        if marker in text:
            return text.split(marker, 1)[1].split(" ", 1)[0].rstrip(".,")
    return "a class outside the allowed set"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def conv_layers(spec: Any, where: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers``, e.g. ``"[(512,10,5)] + [(512,3,2)] * 4 + ..."``,
    as ``[(dim, kernel, stride), ...]``. fairseq ``eval``s this string; here only list
    and tuple literals of integers, ``+`` and ``*`` are understood."""
    if isinstance(spec, (list, tuple)):
        value: Any = spec
    else:
        try:
            value = _arith(ast.parse(str(spec), mode="eval").body)
        except (SyntaxError, ValueError, TypeError, RecursionError):
            raise ModelError(f"{where}: cannot read conv_feature_layers {spec!r}") from None
    layers = []
    for layer in value:
        if not (
            isinstance(layer, (list, tuple))
            and len(layer) == 3
            and all(isinstance(v, int) and v > 0 for v in layer)
        ):
            raise ModelError(
                f"{where}: conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)"
            )
        layers.append((int(layer[0]), int(layer[1]), int(layer[2])))
    if not layers:
        raise ModelError(f"{where}: conv_feature_layers is empty")
    return layers


def _arith(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.List):
        return [_arith(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_arith(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _arith(node.left), _arith(node.right)
        if isinstance(node.op, ast.Add):
            if type(left) is not type(right):
                raise TypeError("mixed +")
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left * right
        count, seq = (right, left) if isinstance(right, int) else (left, right)
        if not isinstance(count, int) or not 0 <= count <= 1000:
            raise ValueError("bad repeat")
        return seq * count
    raise ValueError(f"unsupported expression {type(node).__name__}")
