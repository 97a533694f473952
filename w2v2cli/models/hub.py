"""Hugging Face hub ids: the local cache first, the network only when it is needed and there.

Decisions, with reasons:

- **A cached model is used as it is.** When the cache holds a model's config and weights,
  they are loaded from the snapshot folder without asking the hub whether a newer revision
  exists: no network round trips at start-up, and the same behaviour online and offline.
  ``--revision`` (or removing the cache entry) gets another version.
- **Fail fast without a network.** huggingface_hub retries a failed connection five times
  with back-off (about 30 s, each retry logged twice) before transformers gives up. Before
  any download this module opens one TCP connection to the hub's host with a short timeout;
  when that fails the model error says so at once, in one line. Behind an HTTP(S) proxy the
  probe is skipped (the connection would go to the proxy), and ``HF_HUB_OFFLINE=1`` skips
  the network entirely.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..lm import LM_FOLDER, find_model_lm

log = logging.getLogger("w2v2cli")

#: Seconds the reachability probe waits for a TCP connection to the hub.
PROBE_TIMEOUT = 5.0
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def has_weights(folder: Path) -> bool:
    """Whether a snapshot folder holds the model's weights (not only its processor files)."""
    return any((folder / name).is_file() for name in _WEIGHTS)


def cached_files(
    repo_id: str, cache_dir: Path | None = None, revision: str | None = None
) -> Path | None:
    """The cache's snapshot folder of ``repo_id`` when it holds a config (weights or not)."""
    folder = _snapshot(repo_id, cache_dir, revision)
    return folder if folder is not None and (folder / "config.json").is_file() else None


def _snapshot(repo_id: str, cache_dir: Path | None, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                cache_dir=str(cache_dir) if cache_dir else None,
                revision=revision,
                local_files_only=True,
            )
        )
    except Exception as exc:  # noqa: BLE001 - not cached (or not a valid id): not usable
        log.debug("%s is not in the cache: %s", repo_id, exc)
        return None


def unreachable_reason() -> str | None:
    """None when the hub can be tried; otherwise why not (offline mode, no connection)."""
    if offline():
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot connect to {host}: {reason}"


def quiet_hub_logging() -> None:
    """No download progress bars or library warnings on stderr: we report errors ourselves."""
    import transformers
    from huggingface_hub.utils import logging as hub_logging

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    hub_logging.set_verbosity_error()


def model_lm_folder(
    repo_id: str, cache_dir: Path | None = None, revision: str | None = None
) -> Path | None:
    """The hub repo's ``language_model/`` folder, from the cache or fetched; None if the
    repo has none or the hub cannot be reached (beam search then runs without it)."""
    snapshot = _snapshot(repo_id, cache_dir, revision)
    if snapshot is not None and find_model_lm(snapshot) is not None:
        return find_model_lm(snapshot)
    reason = unreachable_reason()
    if reason is not None:
        log.debug("no language_model/ for %s: %s", repo_id, reason)
        return None
    try:
        from huggingface_hub import snapshot_download

        fetched = snapshot_download(
            repo_id,
            allow_patterns=[f"{LM_FOLDER}/*"],
            cache_dir=str(cache_dir) if cache_dir else None,
            revision=revision,
        )
    except Exception as exc:  # noqa: BLE001 - no such repo, no permission: no model LM
        log.debug("no language_model/ for %s: %s", repo_id, exc)
        return None
    return find_model_lm(Path(fetched))
