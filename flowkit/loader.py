"""Loading a graph file: a Python file that builds a :class:`~flowkit.graph.Graph`.

A graph file defines ``build(job)`` returning a ``Graph`` (preferred: a fresh graph per job),
or a module-level ``graph``. It is loaded by path, not imported by name, so graph files need
no package around them; their own directory is on ``sys.path`` while they load, so a graph
file may import a sibling helper module.

Whatever goes wrong is raised as one :class:`GraphFileError` whose message is one line that
says what was wrong and what to do; the original exception is its ``__cause__``, for
``flowkit --debug``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import itertools
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowkit.graph import Graph
from flowkit.job import JobContext

__all__ = ["GraphFileError", "load_graph"]

# Graph files are imported as ``graph:<stem>``: the colon keeps the name clear of every
# importable package, and node classes defined in the file read ``graph:voice_agent`` as
# their library in specs and drawings (stable across loads and machines, so specs diff).
_PREFIX = "graph:"


class GraphFileError(Exception):
    """A graph file could not be loaded or did not produce a graph.

    The message is one line: what was wrong, where, and what to do about it.

    Attributes:
        path: The graph file as given.
        line: The line of the graph file the problem points at, when there is one.
    """

    def __init__(self, message: str, path: Path, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


def load_graph(path: str | Path, job: JobContext | None = None) -> Graph:
    """Load the graph file at ``path`` and return the graph it builds.

    Args:
        path: The graph file (a ``.py`` file defining ``build(job)`` or ``graph``).
        job: What ``build`` receives; defaults to :meth:`JobContext.local`.

    Returns:
        The graph, not yet validated (``graph.problems()`` checks it).

    Raises:
        GraphFileError: The file is missing, is not Python, does not import, defines no
            graph, its ``build`` raised, or it produced something that is not a ``Graph``.
    """
    given = Path(path)
    file = _check_path(given)
    module = _import(file, given)
    return _graph_of(module, file, given, job if job is not None else JobContext.local())


def _check_path(given: Path) -> Path:
    if not given.exists():
        raise GraphFileError(
            f"{given}: no such graph file; check the path "
            f"(relative paths start at {Path.cwd()})",
            given,
        )
    if given.is_dir():
        raise GraphFileError(
            f"{given}: is a directory, not a graph file; pass the .py file that "
            "defines build(job) or graph",
            given,
        )
    if given.suffix != ".py":
        raise GraphFileError(
            f"{given}: not a Python file (.py); pass the .py file "
            "that defines build(job) or graph",
            given,
        )
    return given.resolve()


@contextlib.contextmanager
def _on_sys_path(directory: Path) -> Iterator[None]:
    entry = str(directory)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _import(file: Path, given: Path) -> types.ModuleType:
    name = _module_name(file)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd suffixes
        raise GraphFileError(f"{given}: cannot be loaded as Python", given)
    module = importlib.util.module_from_spec(spec)
    # In sys.modules before it runs: dataclasses and string annotations (from __future__
    # import annotations) look the module up by name while its classes are created.
    sys.modules[name] = module
    try:
        with _on_sys_path(file.parent):
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        line = exc.lineno
        raise GraphFileError(
            f"{_where(given, line)}: syntax error: {exc.msg}; fix the Python syntax there",
            given,
            line,
        ) from exc
    except ImportError as exc:
        sys.modules.pop(name, None)
        line = _line_in(exc, file)
        missing = f"module {exc.name!r}" if exc.name else "a name"
        raise GraphFileError(
            f"{_where(given, line)}: cannot import {missing} ({_one_line(exc)}); install the "
            "package that provides it, or fix the import",
            given,
            line,
        ) from exc
    except Exception as exc:
        sys.modules.pop(name, None)
        line = _line_in(exc, file)
        raise GraphFileError(
            f"{_where(given, line)}: {type(exc).__name__} while loading the file: "
            f"{_one_line(exc)}; fix the module-level code of the graph file",
            given,
            line,
        ) from exc
    return module


def _graph_of(module: types.ModuleType, file: Path, given: Path, job: JobContext) -> Graph:
    build = getattr(module, "build", None)
    if build is not None:
        return _call_build(build, file, given, job)
    if hasattr(module, "graph"):
        graph = module.graph
        if not isinstance(graph, Graph):
            raise GraphFileError(
                f"{given}: 'graph' is a {_type_of(graph)}, not a flowkit.Graph; "
                "assign the Graph you built to it (graph = flowkit.Graph(...))",
                given,
            )
        return graph
    raise GraphFileError(
        f"{given}: defines neither build(job) nor graph; add "
        "'def build(job: flowkit.JobContext) -> flowkit.Graph' or a module-level "
        "'graph = flowkit.Graph(...)'",
        given,
    )


def _call_build(build: Any, file: Path, given: Path, job: JobContext) -> Graph:
    if not callable(build):
        raise GraphFileError(
            f"{given}: 'build' is a {_type_of(build)}, not a function; define "
            "'def build(job: flowkit.JobContext) -> flowkit.Graph'",
            given,
        )
    try:
        inspect.signature(build).bind(job)
    except TypeError as exc:
        raise GraphFileError(
            f"{given}: build{_signature(build)} cannot be called with the job; it "
            "takes one argument: 'def build(job: flowkit.JobContext) -> flowkit.Graph'",
            given,
        ) from exc
    except ValueError:  # pragma: no cover - builtins without a signature: just try
        pass
    with _on_sys_path(file.parent):
        try:
            graph = build(job)
        except Exception as exc:
            line = _line_in(exc, file)
            raise GraphFileError(
                f"{_where(given, line)}: build(job) raised {type(exc).__name__}: "
                f"{_one_line(exc)}; fix build() {'at that line' if line else 'in that file'}",
                given,
                line,
            ) from exc
    if not isinstance(graph, Graph):
        raise GraphFileError(
            f"{given}: build(job) returned {_type_of(graph)}, not a flowkit.Graph; "
            "end build() with 'return g' where g is the Graph it built",
            given,
        )
    return graph


def _line_in(exc: BaseException, file: Path) -> int | None:
    """The line of ``file`` closest to where ``exc`` was raised (the deepest such frame)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename) == file:
            line = frame.lineno
    return line


def _where(given: Path, line: int | None) -> str:
    return f"{given}:{line}" if line is not None else str(given)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or "(no message)"


def _type_of(value: Any) -> str:
    return "None" if value is None else type(value).__qualname__


def _signature(fn: Any) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):  # pragma: no cover
        return "(...)"


def _module_name(file: Path) -> str:
    """``graph:<stem>``, with a suffix when another file with that stem is loaded already.

    Loading the same file again reuses its name (a reload replaces the module); a different
    file never takes over a name, so its classes cannot shadow the other file's.
    """
    base = _PREFIX + "".join(c if c.isalnum() else "_" for c in file.stem)
    for n in itertools.count(1):
        name = base if n == 1 else f"{base}~{n}"
        loaded = sys.modules.get(name)
        if loaded is None or getattr(loaded, "__file__", None) == str(file):
            return name
    raise AssertionError("unreachable")  # pragma: no cover
