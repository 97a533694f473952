"""``--shard I/N``: which inputs belong to which of N shards (pure).

An input belongs to shard ``shard_index(key, N)``, where ``key`` is its path relative to
the folder that holds every input as given, in POSIX form (``discovery`` computes it). The
index is a SHA-256 of that key, so it depends on neither the listing order, nor the
machine, nor where the data is mounted: N machines given the same inputs and
``--shard 1/N`` ... ``N/N`` cover every file exactly once, and a rerun of one shard sees
the same files as the first run (and, with outputs already written, redoes only the
missing ones).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import ConfigError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ConfigError(
                f"--shard must be I/N with 1 <= I <= N, not {self.index}/{self.count}"
            )

    def owns(self, key: str) -> bool:
        """Whether the input with this ``key`` belongs to this shard."""
        return shard_index(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_index(key: str, count: int) -> int:
    """The 1-based shard of ``key`` among ``count``: a stable hash, the same everywhere."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> Shard:
    """``"2/8"`` → ``Shard(2, 8)``; anything else is a ``ConfigError``."""
    match = _SHARD.match(text)
    if match is None:
        raise ConfigError(f"--shard must look like I/N (e.g. 2/8), not {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))
