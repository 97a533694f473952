"""``w2v2 export``: a folder that ``-m`` accepts on any machine with the OpenVINO extra.

The IR at float32 (``ir_cache.cached_ir``) or int8 (``quantize.export_ir``), with
the config, tokenizer and feature-extractor files beside it, and the model's
``language_model/`` and ``alphabet.json`` when it has them; written atomically.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, OutputError
from ..fsutil import atomic_dir, check_output_dir
from ..models import load_processor, model_ref
from ..options import ModelOptions
from .ir_cache import IR_FILE, IR_INFO, PROCESSOR_FILES, cached_ir, model_folder
from .quantize import export_ir


def export(options: ModelOptions, out_dir: Path, notify: Callable[[str], None]) -> Path:
    """Write the folder (module docstring) at ``options.dtype`` (float32 or int8) to
    ``out_dir``, which must not exist yet."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise OutputError(f"{out_dir} already exists; export writes a new folder")
    check_output_dir(out_dir, "export folder")
    precision = "float32" if options.dtype == "auto" else options.dtype
    if precision not in ("float32", "int8"):
        raise ConfigError(
            f"export writes float32 or int8 IRs, not {precision} (bfloat16 is a "
            "run-time choice: --dtype bfloat16 runs a float32 IR)"
        )
    ref = model_ref(options, notify)
    parts = load_processor(ref, options.language, notify)
    if precision == "int8":
        ir = export_ir(parts, options, notify)
    else:
        ir = cached_ir(parts, options, precision, notify)
    folder = model_folder(parts, options)
    lm = ref.lm_dir()
    with atomic_dir(out_dir) as tmp:
        for name in (IR_FILE, IR_FILE.replace(".xml", ".bin"), IR_INFO):
            shutil.copyfile(ir.parent / name, tmp / name)
        for name in PROCESSOR_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, tmp / name)
        if lm is not None:
            shutil.copytree(lm, tmp / lm.name)
            alphabet = lm.parent / "alphabet.json"
            if alphabet.is_file():
                shutil.copyfile(alphabet, tmp / alphabet.name)
    return out_dir
