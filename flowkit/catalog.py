"""The catalog of installed nodes: the built-in ones and those of node libraries.

A node library registers a module (or package) under the entry-point group
``flowkit.nodes``; every public, concrete :class:`~flowkit.node.Node` subclass defined in it
(or in its submodules) is listed. A library that fails to import is reported with its error,
never fatal: one broken library must not hide the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import types
from dataclasses import dataclass, field

from flowkit.node import Node

__all__ = ["ENTRY_POINT_GROUP", "Catalog", "LibraryError", "NodeEntry", "discover"]

ENTRY_POINT_GROUP = "flowkit.nodes"


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One installed node class.

    Attributes:
        cls: The class.
        library: ``flowkit`` for built-ins, else the entry point's name.
        module: The module that defines it.
    """

    cls: type[Node]
    library: str
    module: str


@dataclass(frozen=True, slots=True)
class LibraryError:
    """A node library (or one of its modules) that could not be imported."""

    library: str
    target: str
    error: str


@dataclass(slots=True)
class Catalog:
    """What :func:`discover` found."""

    nodes: list[NodeEntry] = field(default_factory=list)
    errors: list[LibraryError] = field(default_factory=list)


def _modules(package: types.ModuleType, library: str, catalog: Catalog) -> list[types.ModuleType]:
    found = [package]
    path = getattr(package, "__path__", None)
    if path is None:
        return found
    for info in pkgutil.walk_packages(path, prefix=f"{package.__name__}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            found.append(importlib.import_module(info.name))
        except Exception as exc:  # a broken module is reported, the rest still listed
            catalog.errors.append(LibraryError(library, info.name, f"{type(exc).__name__}: {exc}"))
    return found


def _collect(module: types.ModuleType, library: str, catalog: Catalog, seen: set[type]) -> None:
    for name, obj in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(obj, Node)
            and obj.__module__ == module.__name__
            and not name.startswith("_")
            and hasattr(obj, "style")
            and obj not in seen
        ):
            seen.add(obj)
            catalog.nodes.append(NodeEntry(obj, library, module.__name__))


def discover() -> Catalog:
    """Find every installed node: ``flowkit.nodes.*`` and each registered library."""
    catalog = Catalog()
    seen: set[type] = set()
    import flowkit.nodes

    for module in _modules(flowkit.nodes, "flowkit", catalog):
        _collect(module, "flowkit", catalog, seen)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:
            catalog.errors.append(
                LibraryError(entry.name, entry.value, f"{type(exc).__name__}: {exc}")
            )
            continue
        if not isinstance(loaded, types.ModuleType):
            catalog.errors.append(
                LibraryError(entry.name, entry.value, "the entry point must name a module")
            )
            continue
        for module in _modules(loaded, entry.name, catalog):
            _collect(module, entry.name, catalog, seen)
    return catalog
