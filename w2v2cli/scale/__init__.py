"""Beyond one machine: deterministic shards, the run manifest, and Ray Data.

``shards`` and ``manifest`` are pure and light (no Ray). ``ray_data`` imports Ray only
when used; it needs ``pip install 'w2v2cli[ray]'``.
"""

from .manifest import RunManifest, manifest_record
from .shards import Shard, parse_shard, shard_index

__all__ = ["RunManifest", "Shard", "manifest_record", "parse_shard", "shard_index"]
