"""Labels for drawings: ids safe in a drawing language, and short parameter values."""

from __future__ import annotations

import json
import re

import pydantic

__all__ = ["param_lines", "unique_ids"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# A long prompt or a provider's repr would swamp a node's box; the spec keeps the full value.
_MAX_VALUE = 48


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


def param_lines(params: dict[str, pydantic.JsonValue]) -> list[str]:
    """``name=value`` for each parameter, values as JSON and cut to a readable length."""
    lines = []
    for name, value in params.items():
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > _MAX_VALUE:
            text = text[: _MAX_VALUE - 1] + "…"
        lines.append(f"{name}={text}")
    return lines
