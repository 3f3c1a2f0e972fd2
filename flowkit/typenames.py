"""Port types: how they are named in messages and drawings, and when one fits another."""

from __future__ import annotations

import types
import typing
from typing import Any

__all__ = ["is_assignable", "type_name"]


def type_name(tp: Any) -> str:
    """A short, readable name for a port type: ``str``, ``AudioFrame``, ``list[str]``."""
    if tp is Any:
        return "Any"
    if tp is None or tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(type_name(arg) for arg in typing.get_args(tp))
        return f"{type_name(origin)}[{args}]"
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp)


def _members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _runtime_class(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    return origin if origin is not None else tp


def is_assignable(produced: Any, consumed: Any) -> bool:
    """Whether messages of type ``produced`` may flow into a port of type ``consumed``.

    The rule is a subclass check, with gradual typing for ``Any`` on either side (it is
    explicit in port declarations, so it is a deliberate choice). A union producer fits when
    every member fits; a union consumer accepts a member of any of its types. Generic
    parameters are compared one level deep (``list[str]`` does not fit ``list[int]``).
    """
    if produced is Any or consumed is Any or consumed is object:
        return True
    producers = _members(produced)
    if len(producers) > 1:
        return all(is_assignable(p, consumed) for p in producers)
    return any(_fits(produced, c) for c in _members(consumed))


def _fits(produced: Any, consumed: Any) -> bool:
    if consumed is Any or produced is Any:
        return True
    src_cls, dst_cls = _runtime_class(produced), _runtime_class(consumed)
    if not (isinstance(src_cls, type) and isinstance(dst_cls, type)):
        return bool(produced == consumed)
    if not issubclass(src_cls, dst_cls):
        return False
    dst_args = typing.get_args(consumed)
    if not dst_args:
        return True
    src_args = typing.get_args(produced)
    if len(src_args) != len(dst_args):
        # A bare producer type (``list``) into ``list[str]``: unknown element type; accept.
        return not src_args
    return all(is_assignable(s, d) for s, d in zip(src_args, dst_args, strict=True))

