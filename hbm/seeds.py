"""Seeds derived from the config's seed and the job's identity, never from time or process ids."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *keys) -> int:
    """A 32-bit seed that depends only on ``seed`` and the job's keys (analysis, level, stage, ...)."""
    text = "\x1f".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
