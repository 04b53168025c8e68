"""Deterministic sharding: `--shard i/n` keeps the cases whose id hashes to i.

Membership depends on the case id alone (not on the order or on which other backends
are available), so shards made on different machines still form an exact partition:
their union is the full run and no case is in two shards.
"""

from __future__ import annotations

import hashlib
import re

from .errors import InputError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` with 1 <= i <= n."""
    match = _SHARD.match(text)
    if not match:
        raise InputError(f"malformed shard {text!r}; expected i/n, e.g. 2/3")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise InputError(f"shard {text!r} is out of range: need 1 <= i <= n")
    return index, count


def in_shard(case_id: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1
