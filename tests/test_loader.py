"""The graph-file loader: what it loads, and the one-line error for each bad file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import flowkit as fk
from flowkit.loader import GraphFileError, load_graph

FIXTURES = Path(__file__).parent / "fixtures" / "graphs"
ROOT = Path(__file__).parents[1]


def test_build_file_gives_its_graph_built_for_the_job() -> None:
    graph = load_graph(FIXTURES / "good.py", fk.JobContext.local(count=7))
    assert isinstance(graph, fk.Graph)
    assert graph.name == "good"
    assert graph.nodes["numbers"].params.model_dump() == {"count": 7}
    assert graph.problems() == []


def test_job_defaults_to_a_local_job() -> None:
    graph = load_graph(str(FIXTURES / "good.py"))
    assert graph.nodes["numbers"].params.model_dump() == {"count": 3}


def test_module_level_graph() -> None:
    graph = load_graph(FIXTURES / "module_graph.py")
    assert graph.name == "module-level"
    assert len(graph.nodes) == 3


def test_each_load_builds_a_fresh_graph() -> None:
    first = load_graph(FIXTURES / "good.py")
    second = load_graph(FIXTURES / "good.py")
    assert first is not second
    assert first.nodes["echo"] is not second.nodes["echo"]


def test_sibling_imports_work_and_sys_path_is_restored() -> None:
    directory = str(FIXTURES.resolve())
    assert directory not in sys.path
    graph = load_graph(FIXTURES / "good.py")
    assert type(graph.nodes["numbers"]).__module__ == "flowkit_fixture_nodes"
    assert directory not in sys.path


def test_classes_of_a_graph_file_name_the_file_as_their_library() -> None:
    spec = load_graph(ROOT / "graphs" / "demo_pipeline.py").spec()
    assert spec.node("words").library == "graph:demo_pipeline"
    assert spec.node("words").kind == "graph:demo_pipeline.Words"


def test_demo_pipeline_is_valid_with_a_subgraph_and_a_feedback_loop() -> None:
    spec = load_graph(ROOT / "graphs" / "demo_pipeline.py").spec()
    assert spec.problems == ()
    assert {n.group for n in spec.nodes} == {"", "clean"}
    assert [e for e in spec.edges if e.feedback]
    assert {n.style for n in spec.nodes} >= {"function", "rx"}


async def test_demo_pipeline_runs_round_its_loop_to_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = fk.JobContext.local(text="ab abc ABCDEFGHIJKLMNOPQ!")
    graph = load_graph(ROOT / "graphs" / "demo_pipeline.py", job)
    runner = fk.GraphRunner(graph)
    await asyncio.wait_for(runner.run(), 5)
    # 2 fits; 3 -> 1; 17 -> 8 -> 4 -> 2 (the "!" is stripped by the subgraph)
    assert sorted(capsys.readouterr().out.split()) == ["1", "2", "2"]
    assert runner.metrics().edge("shrink.out", "fit.again").messages == 4


def _error(path: Path | str) -> GraphFileError:
    with pytest.raises(GraphFileError) as info:
        load_graph(path)
    message = str(info.value)
    assert "\n" not in message, "a graph file error is one line"
    return info.value


def test_missing_file() -> None:
    error = _error(FIXTURES / "no_such_graph.py")
    assert "no_such_graph.py: no such graph file; check the path" in str(error)


def test_not_a_python_file(tmp_path: Path) -> None:
    path = tmp_path / "graph.txt"
    path.write_text("graph = None\n")
    assert "not a Python file (.py)" in str(_error(path))


def test_a_directory_is_not_a_graph_file(tmp_path: Path) -> None:
    assert "is a directory, not a graph file" in str(_error(tmp_path))


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import flowkit as fk\n\n\ndef build(job) -> fk.Graph\n    return None\n")
    error = _error(path)
    assert str(error).startswith(f"{path}:4: syntax error:")
    assert error.line == 4
    assert isinstance(error.__cause__, SyntaxError)


def test_import_error_inside_the_file() -> None:
    error = _error(FIXTURES / "bad_import.py")
    assert "bad_import.py:1: cannot import module 'flowkit_no_such_module'" in str(error)
    assert "install the package" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_error_while_the_module_runs() -> None:
    error = _error(FIXTURES / "module_raises.py")
    assert "module_raises.py:3: ValueError while loading the file" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_neither_build_nor_graph() -> None:
    message = str(_error(FIXTURES / "no_graph.py"))
    assert "defines neither build(job) nor graph" in message
    assert "def build(job: flowkit.JobContext) -> flowkit.Graph" in message


def test_build_raising_names_exception_and_line() -> None:
    error = _error(FIXTURES / "build_raises.py")
    assert "build_raises.py:5: build(job) raised ValueError: the room name is missing" in str(
        error
    )
    assert error.line == 5
    assert isinstance(error.__cause__, ValueError)


def test_build_returning_something_else_says_what_came_back() -> None:
    message = str(_error(FIXTURES / "wrong_return.py"))
    assert "build(job) returned dict, not a flowkit.Graph" in message


def test_build_returning_none(tmp_path: Path) -> None:
    path = tmp_path / "none.py"
    path.write_text("def build(job):\n    pass\n")
    assert "build(job) returned None, not a flowkit.Graph" in str(_error(path))


def test_module_graph_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "wrong_graph.py"
    path.write_text("graph = ['not', 'a', 'graph']\n")
    assert "'graph' is a list, not a flowkit.Graph" in str(_error(path))


def test_build_with_the_wrong_signature(tmp_path: Path) -> None:
    path = tmp_path / "no_job.py"
    path.write_text("import flowkit as fk\n\ndef build():\n    return fk.Graph('x')\n")
    message = str(_error(path))
    assert "build() cannot be called with the job" in message


def test_a_failed_file_leaves_no_module_behind(tmp_path: Path) -> None:
    path = tmp_path / "leaves_nothing.py"
    path.write_text("raise RuntimeError('no')\n")
    _error(path)
    assert not [name for name in sys.modules if "leaves_nothing" in name]


def test_two_files_with_one_stem_do_not_share_a_module(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.py").write_text(
            "import flowkit as fk\n\n@fk.node\ndef f(x: int) -> int:\n    return x\n\n"
            f"graph = fk.Graph({sub!r})\ngraph.add(f())\n"
        )
    first = load_graph(tmp_path / "a" / "same.py")
    second = load_graph(tmp_path / "b" / "same.py")
    first_cls = type(first.nodes["f"])
    second_cls = type(second.nodes["f"])
    assert first_cls.__module__ != second_cls.__module__
    assert sys.modules[first_cls.__module__].__file__ == str(tmp_path / "a" / "same.py")
