"""The ``flowkit`` command line: validate and viz, exit codes, one-line errors, --debug."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result

import flowkit as fk
from flowkit.cli import main
from flowkit.loader import load_graph
from flowkit.spec import GraphSpec
from flowkit.viz import RENDERERS, render, render_text

FIXTURES = Path(__file__).parent / "fixtures" / "graphs"
DEMO = Path(__file__).parents[1] / "graphs" / "demo_pipeline.py"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def chunk_converter(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """Register the fixtures' Chunk converter for one test; the graph file shares the class."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    import flowkit_fixture_chunks as chunks

    fk.register_converter(chunks.Chunk, chunks.rechunk_factory)
    yield chunks
    fk.unregister_converter(chunks.Chunk, chunks.rechunk_factory)


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"flowkit {fk.__version__}"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "validate" in result.output and "viz" in result.output


@pytest.mark.parametrize("path", [FIXTURES / "good.py", FIXTURES / "module_graph.py", DEMO])
def test_validate_a_good_graph(path: Path) -> None:
    result = run("validate", path)
    assert result.exit_code == 0, result.output
    spec = load_graph(path).spec()
    assert result.stdout.strip() == (
        f"✓ graph {spec.name!r} is valid: {len(spec.nodes)} nodes, {len(spec.edges)} edges, "
        "0 inserted converters"
    )
    assert result.stderr == ""


def test_validate_lists_every_problem() -> None:
    result = run("validate", FIXTURES / "problems.py")
    assert result.exit_code == 1
    problems = load_graph(FIXTURES / "problems.py").problems()
    kinds = [str(p.kind) for p in problems]
    assert kinds.count("type-mismatch") == 1
    assert kinds.count("unconnected-input") == 2
    assert kinds.count("undeclared-cycle") == 1
    assert "4 problems:" in result.stdout
    lines = result.stdout.splitlines()
    for problem in problems:
        assert any(f"[{problem.kind}] {problem.message}" in line for line in lines), problem
    assert "the edges ping -> pong -> ping form a cycle" in result.stdout


def test_validate_counts_an_inserted_converter(chunk_converter: ModuleType) -> None:
    result = run("validate", FIXTURES / "converted.py")
    assert result.exit_code == 0, result.output
    assert "3 nodes, 2 edges, 1 inserted converter" in result.stdout


def test_validate_without_the_converter_reports_the_format_mismatch() -> None:
    result = run("validate", FIXTURES / "converted.py")
    assert result.exit_code == 1
    assert "[format-mismatch] mic.out sends 48 kHz mono but speaker.chunks expects 16 kHz mono" in (
        result.stdout
    )


BAD_FILES = {
    "missing": (FIXTURES / "no_such_graph.py", "no such graph file", None),
    "import": (
        FIXTURES / "bad_import.py",
        "bad_import.py:1: cannot import module 'flowkit_no_such_module'",
        "ModuleNotFoundError",
    ),
    "no graph": (FIXTURES / "no_graph.py", "defines neither build(job) nor graph", None),
    "build raises": (
        FIXTURES / "build_raises.py",
        "build_raises.py:5: build(job) raised ValueError: the room name is missing",
        "ValueError: the room name is missing",
    ),
    "wrong return": (FIXTURES / "wrong_return.py", "returned dict, not a flowkit.Graph", None),
    "module raises": (
        FIXTURES / "module_raises.py", "module_raises.py:3: ValueError", "ValueError"
    ),
}


def _syntax_error_file(tmp_path: Path) -> Path:
    # Stored in tmp_path, not in fixtures/: a fixture with a syntax error breaks ruff.
    path = tmp_path / "syntax.py"
    path.write_text("import flowkit as fk\n\ndef build(job)\n    return fk.Graph('x')\n")
    return path


def _bad_file(case: str, tmp_path: Path) -> tuple[Path, str, str | None]:
    if case == "syntax":
        path = _syntax_error_file(tmp_path)
        return path, f"{path}:3: syntax error", "SyntaxError"
    if case == "not python":
        path = tmp_path / "graph.json"
        path.write_text("{}")
        return path, "graph.json: not a Python file (.py)", None
    return BAD_FILES[case]


CASES = [*BAD_FILES, "syntax", "not python"]


@pytest.mark.parametrize("command", ["validate", "viz"])
@pytest.mark.parametrize("case", CASES)
def test_bad_file_is_one_line_and_exit_2(case: str, command: str, tmp_path: Path) -> None:
    path, expected, _ = _bad_file(case, tmp_path)
    result = run(command, path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", [c for c in CASES if c in ("syntax", "import", "build raises")])
def test_debug_shows_the_traceback(case: str, tmp_path: Path) -> None:
    path, expected, exception_line = _bad_file(case, tmp_path)
    result = run("--debug", "validate", path)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert exception_line is not None and exception_line in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert expected in result.stderr


@pytest.mark.parametrize("fmt", list(RENDERERS))
@pytest.mark.parametrize("path", [FIXTURES / "good.py", DEMO])
def test_viz_prints_the_drawing(fmt: str, path: Path) -> None:
    result = run("viz", path, "--format", fmt)
    assert result.exit_code == 0, result.output
    spec = load_graph(path).spec()
    for node in spec.nodes:
        assert node.name in result.stdout
    if fmt == "text":
        assert result.stdout.startswith(spec.name)
    else:
        assert result.stdout == render(spec, fmt)


def test_viz_default_is_text_and_lines_do_not_wrap() -> None:
    result = run("viz", DEMO)
    assert result.exit_code == 0
    assert result.stdout == render_text(load_graph(DEMO).spec())
    assert 'text="Graphs, you can SEE and check!"' in result.stdout
    assert "out ─ int ─▶ fit.again  ↺ loop" in result.stdout


def test_viz_json_round_trips() -> None:
    result = run("viz", FIXTURES / "good.py", "-f", "json")
    assert result.exit_code == 0
    assert GraphSpec.model_validate_json(result.stdout) == load_graph(FIXTURES / "good.py").spec()


@pytest.mark.parametrize("fmt", list(RENDERERS))
def test_viz_writes_a_file(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"drawing.{fmt}"
    result = run("viz", DEMO, "-f", fmt, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert str(out) in result.stderr
    assert out.read_text(encoding="utf-8") == render(load_graph(DEMO).spec(), fmt)


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json"])
def test_viz_draws_a_graph_with_problems_and_lists_them_after(fmt: str) -> None:
    result = run("viz", FIXTURES / "problems.py", "-f", fmt)
    assert result.exit_code == 0
    spec = load_graph(FIXTURES / "problems.py").spec()
    assert result.stdout == render(spec, fmt), "problems must not leak into the drawing"
    assert "4 problems:" in result.stderr
    for kind in ("type-mismatch", "unconnected-input", "undeclared-cycle"):
        assert f"[{kind}]" in result.stderr


def test_viz_text_of_a_graph_with_problems() -> None:
    result = run("viz", FIXTURES / "problems.py")
    assert result.exit_code == 0
    drawing, _, problems = result.stdout.partition("4 problems:")
    assert "● pair" in drawing
    assert "[type-mismatch]" in problems and "[undeclared-cycle]" in problems


def test_viz_shows_an_inserted_converter(chunk_converter: ModuleType) -> None:
    result = run("viz", FIXTURES / "converted.py")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "rechunk@speaker.chunks  " in line)
    assert "(inserted)" in line
    assert "out ─ Chunk 48 kHz mono ─▶ rechunk@speaker.chunks.chunk" in result.stdout
    assert "out ─ Chunk 16 kHz mono ─▶ speaker.chunks" in result.stdout


def test_viz_rejects_an_unknown_format() -> None:
    result = run("viz", DEMO, "-f", "svgz")
    assert result.exit_code == 2
    assert "svgz" in result.stderr


def test_commands_leave_sys_path_alone() -> None:
    before = list(sys.path)
    run("validate", FIXTURES / "good.py")
    assert sys.path == before
