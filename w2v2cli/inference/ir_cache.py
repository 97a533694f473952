"""The OpenVINO IRs: converted once, cached, repaired when damaged; and exported folders.

- **Conversion.** ``openvino.convert_model`` traces the transformers model once, with a
  dynamic batch and length (one IR serves every chunk shape), and the IR is saved with fp32
  weights (OpenVINO's default would round them to fp16). ``int8`` is the same IR with its
  weights compressed to int8 by NNCF (``compress_weights``, asymmetric, per channel):
  no calibration data, the same file on every machine.
- **Cache.** IRs live under the Hugging Face cache folder the tool already uses
  (``--cache-dir`` respected), in ``w2v2cli-openvino/<key>/``. The key covers what the IR
  depends on: the model's config (content) and weights (size and modification time), the
  precision, and the OpenVINO, NNCF, transformers and converter versions. An entry is
  written to a temporary folder and renamed into place (``fsutil.atomic_dir``), so a
  crash never leaves half an entry. A second run does not convert again, and it never
  loads the torch weights.
- **Repair.** An entry that cannot be used (a file missing or cut short, an emptied
  ``model.xml``, written by another ``CONVERTER_VERSION``, an IR OpenVINO cannot read or
  compile) is set aside, said so in one line, and converted again (``open_entry``), as
  the Hugging Face hub fetches a damaged file again. Converting and repairing happen under
  the entry's lock (``fsutil.locked``) after checking again, so two runs that find one
  entry missing or damaged convert it once, and the second uses the first one's. A folder
  written by ``w2v2 export`` is the user's: one that cannot be loaded is reported, never
  rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConversionError, ModelError, OutputError
from ..fsutil import atomic_dir, atomic_write, locked, remove_leftovers, set_aside
from ..models import LoadedModel, family_of, load_weights, locate_model
from ..models.ref import IR_FILE
from ..options import ModelOptions
from .ir_inputs import (
    MEL_EXAMPLE_FRAMES,
    FlatFrames,
    mel_bins,
    with_channel_axis,
    with_flat_frames,
    with_model_input,
)
from .openvino_backend import (
    EXTRA_HINT,
    PRECISIONS,
    OpenVINOBackend,
    cpu_capabilities,
    dtype_of,
    import_openvino,
    ir_precision_for,
    package_version,
    readable,
)

log = logging.getLogger("w2v2cli")


#: Bump when the conversion changes in a way that makes older cached IRs wrong.
CONVERTER_VERSION = 1


CACHE_FOLDER = "w2v2cli-openvino"


IR_INFO = "w2v2cli-ir.json"


IR_WEIGHTS = IR_FILE.replace(".xml", ".bin")


#: What ``entry_problem`` says of a cache entry that does not exist.
MISSING = "missing"


#: What ``export`` copies beside the IR: the files a processor is read from.
PROCESSOR_FILES = (
    "config.json",
    "vocab.json",
    "tokenizer.json",  # subword tokenizers (Parakeet CTC, LASR, OmniASR)
    "spiece.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "processor_config.json",
)


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")


def cache_key(model_dir: Path, precision: str, extra: str = "") -> str:
    """What a cached IR depends on (see the module docstring), as a short hex digest;
    ``extra``: anything else it depends on (what a quantized IR was calibrated on)."""
    h = hashlib.sha256()
    parts = [f"converter={CONVERTER_VERSION}", f"ir={ir_precision_for(precision)}"]
    parts += [f"extra={extra}"] if extra else []
    parts += [f"{p}={package_version(p)}" for p in ("openvino", "nncf", "transformers")]
    h.update("\n".join(parts).encode())
    config = model_dir / "config.json"
    h.update(config.read_bytes())
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and path.suffix in _WEIGHT_SUFFIXES and path.name != "config.json":
            st = path.stat()
            h.update(f"\n{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cache_root(options: ModelOptions) -> Path:
    """``--cache-dir`` or the Hugging Face hub cache, plus ``w2v2cli-openvino``."""
    if options.cache_dir is not None:
        return Path(options.cache_dir) / CACHE_FOLDER
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / CACHE_FOLDER


def _model_dir(parts: LoadedModel) -> Path | None:
    """The folder holding the model's config and weights, once they are on disk (a hub
    id's snapshot is looked up again: the weights may have been downloaded since)."""
    ref = parts.ref
    if ref.is_hub and not (ref.folder is not None and ref.complete):
        ref = locate_model(ref.name, ref.cache_dir, ref.revision)
    return ref.folder if ref.complete else None


def convert(
    parts: LoadedModel,
    options: ModelOptions,
    precision: str,
    target: Path,
    notify: Callable[[str], None],
) -> None:
    """Convert the transformers model to an IR folder at ``target`` (atomically)."""
    ov = import_openvino()
    import torch  # deferred: a cached IR runs without torch

    started = time.perf_counter()
    model = load_weights(parts, options, "cpu", "float32")
    family = family_of(parts.config)
    example = torch.zeros(1, parts.sampling_rate, dtype=torch.float32)
    if family.channel_axis:  # OmniASR: the IR takes (batch, samples)
        model = with_channel_axis(model, torch)
    elif family.input == "mel":  # Parakeet, LASR: the IR takes (batch, frames x bins)
        bins = mel_bins(parts)
        model = with_flat_frames(model, bins, torch)
        example = torch.zeros(1, MEL_EXAMPLE_FRAMES * bins, dtype=torch.float32)
    notify(
        f"converting {parts.name} to OpenVINO ({precision}); this happens once, the "
        f"result is cached in {target.parent}"
    )
    try:
        # Tracing warns about every Python branch it freezes; none matters here (the IR's
        # shapes are dynamic and its outputs are checked against torch in the tests).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ov_model = ov.convert_model(
                model,
                example_input={"input_values": example},
                input=[("input_values", ov.PartialShape([-1, -1]), ov.Type.f32)],
            )
    except Exception as exc:  # noqa: BLE001 - a family OpenVINO cannot convert
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConversionError(f"OpenVINO cannot convert {parts.name!r}: {reason}") from None
    del model
    if precision == "int8":
        ov_model = _compress_int8(ov_model, notify)
    info = {
        "model": parts.name,
        "precision": ir_precision_for(precision),
        "openvino": package_version("openvino"),
        "converter": CONVERTER_VERSION,
    }
    save_ir(ov_model, target, info)
    notify(f"converted in {time.perf_counter() - started:.0f} s")


def save_ir(ov_model: Any, target: Path, info: dict[str, Any]) -> None:
    """Write ``ov_model`` (fp32 weights) and ``info`` to a new folder ``target``,
    atomically; ``info`` gets the sizes of the IR's files, which ``entry_problem`` checks."""
    ov = import_openvino()
    try:
        with atomic_dir(target) as tmp:
            ov.save_model(ov_model, str(tmp / IR_FILE), compress_to_fp16=False)
            sizes = {name: (tmp / name).stat().st_size for name in (IR_FILE, IR_WEIGHTS)}
            atomic_write(tmp / IR_INFO, json.dumps({**info, "sizes": sizes}, indent=1))
    except OutputError:
        if not (target / IR_FILE).is_file():
            raise
        log.debug("another run wrote %s at the same time; using it", target)


def _compress_int8(ov_model: Any, notify: Callable[[str], None]) -> Any:
    try:
        import nncf
    except ImportError:
        raise ConfigError(f"--dtype int8 needs the nncf package; {EXTRA_HINT}") from None
    notify("compressing the weights to int8")
    logging.getLogger("nncf").setLevel(logging.ERROR)
    # NNCF draws its progress bar on stdout, which may be carrying results (--stdout).
    with contextlib.redirect_stdout(sys.stderr):
        return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def files_problem(folder: Path) -> str | None:
    """What is wrong with the IR files of ``folder`` (cache entry or export), judged from
    the files alone: a file missing, ``model.xml`` empty, a size other than the one
    written (``save_ir`` records them); None when nothing is."""
    for name in (IR_FILE, IR_WEIGHTS, IR_INFO):
        if not (folder / name).is_file():
            return f"{name} is missing"
    if (folder / IR_FILE).stat().st_size == 0:
        return f"{IR_FILE} is empty"
    try:
        info = json.loads((folder / IR_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{IR_INFO} cannot be read"
    sizes = info.get("sizes") if isinstance(info, dict) else None
    for name in (IR_FILE, IR_WEIGHTS):
        written = sizes.get(name) if isinstance(sizes, dict) else None
        size = (folder / name).stat().st_size
        if isinstance(written, int) and size != written:
            return f"{name} has {size} bytes, {written} were written"
    return None


def entry_problem(folder: Path, ir_precision: str) -> str | None:
    """Why the cache entry ``folder`` cannot be used, judged from its files: ``MISSING``
    where there is none, a reason where it is damaged or was written by another converter
    version, None where it looks whole (``open_entry`` then reads or compiles it)."""
    if not folder.exists():
        return MISSING
    problem = files_problem(folder)
    if problem is not None:
        return problem
    try:
        info = json.loads((folder / IR_INFO).read_text(encoding="utf-8"))
        converter, precision = info["converter"], info["precision"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{IR_INFO} is not valid"
    if converter != CONVERTER_VERSION:
        return f"written by converter version {converter}, this is version {CONVERTER_VERSION}"
    if precision != ir_precision:
        return f"it holds a {precision} model, not {ir_precision}"
    return None


def open_entry(
    target: Path,
    ir_precision: str,
    use: Callable[[Path], Any],
    notify: Callable[[str], None],
    build: Callable[[Path], None] | None = None,
    remedy: str = "converted again",
) -> Any:
    """``use(target / IR_FILE)`` on the cache entry ``target`` (an IR at ``ir_precision``),
    made or repaired first where needed (the module docstring's "Repair").

    A missing entry is built (``build(target)``, which writes it atomically). A damaged
    one (``entry_problem`` says why, or ``use`` raises ``ModelError``: OpenVINO cannot
    read or compile it) is set aside, with one line through ``notify`` (ending "it is set
    aside and ``remedy``"), and built again.
    Both under the entry's lock, after checking again: an entry another run built or
    repaired meanwhile is used as it is. Without ``build`` (a calibrated IR, built later
    from the run's audio) returns None where the entry is missing or was set aside. An
    entry that still fails once rebuilt raises ``ModelError``.
    """
    ir = target / IR_FILE
    problem = entry_problem(target, ir_precision)
    if problem is None:
        try:
            return use(ir)
        except ModelError as exc:
            problem = str(exc)
    if problem == MISSING and build is None:
        return None
    waiting = f"waiting for another run that is writing {target}"
    locking = True
    try:
        with locked(target.parent / f".{target.name}.lock", lambda: notify(waiting)):
            locking = False
            remove_leftovers(target)  # of runs killed while writing it
            problem = entry_problem(target, ir_precision)
            if problem is None:
                try:
                    return use(ir)
                except ModelError as exc:
                    problem = str(exc)
            if problem != MISSING:
                notify(
                    f"the cached OpenVINO model {target} cannot be used ({problem}); it is "
                    f"set aside and {remedy}"
                )
                set_aside(target)
            if build is None:
                return None
            build(target)
            return use(ir)
    except OutputError as exc:
        if not locking:
            raise
        state = "does not exist yet" if problem == MISSING else f"cannot be used ({problem})"
        raise OutputError(
            f"the cached OpenVINO model {target} {state}, and the cache cannot be written: {exc}"
        ) from None


def exported_precision(folder: Path | None) -> str | None:
    """The IR precision of a folder written by ``w2v2 export``, or None for other folders."""
    if folder is None or not (folder / IR_FILE).is_file():
        return None
    try:
        info = json.loads((folder / IR_INFO).read_text(encoding="utf-8"))
        return str(info["precision"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelError(f"{folder} holds an OpenVINO model but no valid {IR_INFO}") from None


def _exported_ir(parts: LoadedModel, precision: str) -> Path | None:
    """Checks ``precision`` (against this CPU too); the IR of an exported folder, or None
    where the model is not one (its IR is then the cache's)."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"the OpenVINO backend runs {', '.join(PRECISIONS)}, not {precision} "
            "(float16 is a CUDA precision)"
        )
    import_openvino()
    if precision == "bfloat16" and "BF16" not in cpu_capabilities():
        raise ConfigError(
            "--dtype bfloat16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this "
            f"one offers {', '.join(cpu_capabilities())}: use float32 or int8"
        )
    exported = exported_precision(parts.local_dir)
    if exported is None:
        return None
    if ir_precision_for(precision) != dtype_of(exported):
        raise ConfigError(
            f"{parts.local_dir} was exported at {exported}; it runs as {dtype_of(exported)}"
            + (" or bfloat16" if exported == "float32" else "")
        )
    folder: Path = parts.local_dir  # type: ignore[assignment]
    problem = files_problem(folder)
    if problem is not None:  # the user's folder: reported, never rewritten
        raise ModelError(
            f"{folder} (written by w2v2 export) cannot be used: {problem}; export it again"
        )
    return folder / IR_FILE


def cache_entry(parts: LoadedModel, options: ModelOptions, precision: str) -> Path:
    """The cache folder of the IR of ``parts`` at ``precision``."""
    return cache_root(options) / cache_key(model_folder(parts, options), precision)


def cached_ir(
    parts: LoadedModel, options: ModelOptions, precision: str, notify: Callable[[str], None]
) -> Path:
    """The IR for ``parts`` at ``precision``: an exported folder's own, or the cache's
    (converted first when missing, again when damaged: ``open_entry``; read once to
    check it). Checks the precision against this CPU."""
    exported = _exported_ir(parts, precision)
    if exported is not None:
        return exported
    target = cache_entry(parts, options, precision)
    ir: Path = open_entry(
        target,
        ir_precision_for(precision),
        readable,
        notify,
        _converter(parts, options, precision, notify),
    )
    log.debug("OpenVINO IR for %s: %s", parts.name, target)
    return ir


def _converter(
    parts: LoadedModel, options: ModelOptions, precision: str, notify: Callable[[str], None]
) -> Callable[[Path], None]:
    return lambda target: convert(parts, options, precision, target, notify)


def model_folder(parts: LoadedModel, options: ModelOptions) -> Path:
    """The folder with the model's config and weights, downloading the weights first when
    only the processor files are cached."""
    folder = _model_dir(parts)
    if folder is None or not (folder / "config.json").is_file():
        load_weights(parts, options, "cpu", "float32")  # downloads the weights
        folder = _model_dir(parts)
        if folder is None:
            raise ModelError(f"cannot find the downloaded files of {parts.name!r}")
    return folder


def open_openvino(
    parts: LoadedModel,
    options: ModelOptions,
    precision: str,
    threads: int,
    notify: Callable[[str], None],
) -> OpenVINOBackend | FlatFrames:
    """The IR of ``parts`` at ``precision``, compiled for this CPU: an exported folder's
    (one that cannot be loaded is a ``ModelError``), or the cache's, converted or
    repaired first where needed (``open_entry``); behind ``FlatFrames`` for a log-mel
    model."""
    exported = _exported_ir(parts, precision)
    if exported is not None:
        try:
            return with_model_input(parts, OpenVINOBackend(exported, precision, threads))
        except ModelError as exc:
            raise ModelError(f"{exc} (a folder written by w2v2 export: export it again)") from None
    target = cache_entry(parts, options, precision)
    backend: OpenVINOBackend = open_entry(
        target,
        ir_precision_for(precision),
        lambda ir: OpenVINOBackend(ir, precision, threads),
        notify,
        _converter(parts, options, precision, notify),
    )
    log.debug("OpenVINO IR for %s: %s", parts.name, target)
    return with_model_input(parts, backend)
