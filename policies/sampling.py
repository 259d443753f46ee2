"""A seeded draw from a pmf: the same eventId and pmf always give the same action."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def seed_for(event_id: str) -> int:
    """A 64-bit seed derived from the eventId (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(event_id.encode("utf-8")).digest()[:8], "big")


def sample(pmf: Sequence[float], event_id: str) -> int:
    """Index drawn from `pmf` (need not sum to exactly 1) with a generator seeded by eventId."""
    total = float(sum(pmf))
    if not total > 0.0:
        raise ValueError("pmf has no mass")
    u = np.random.default_rng(seed_for(event_id)).random() * total
    cumulative = 0.0
    last = 0
    for index, p in enumerate(pmf):
        if p <= 0.0:
            continue
        cumulative += p
        last = index
        if u < cumulative:
            return index
    return last  # u fell in the rounding gap at the top: the last action with mass
