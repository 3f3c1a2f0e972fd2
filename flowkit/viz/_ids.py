"""Identifiers for drawing languages: derived from names, safe, and never colliding."""

from __future__ import annotations

import re

__all__ = ["unique_ids"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def unique_ids(names: list[str], prefix: str) -> dict[str, str]:
    """Map each name to ``prefix`` + the name with unsafe characters replaced by ``_``.

    Two names that sanitise alike (``a-b`` and ``a_b``) get numbered suffixes, so every name
    keeps an id of its own. The prefix keeps ids clear of keywords (``end``, ``graph``).
    """
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = prefix + _UNSAFE.sub("_", name)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        ids[name] = candidate
        taken.add(candidate)
    return ids
