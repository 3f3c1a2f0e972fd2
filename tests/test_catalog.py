import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowkit.catalog import discover
from flowkit.cli import main

LIBS = Path(__file__).parent / "fixtures" / "libs"


@pytest.fixture
def libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(LIBS))
    entries = [
        importlib.metadata.EntryPoint("fixture", "flowkit_fixture_lib", "flowkit.nodes"),
        importlib.metadata.EntryPoint("broken", "flowkit_fixture_broken", "flowkit.nodes"),
    ]

    def entry_points(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
        assert kwargs == {"group": "flowkit.nodes"}
        return entries

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.delitem(sys.modules, "flowkit_fixture_broken", raising=False)


def test_built_in_nodes_are_found() -> None:
    names = {e.cls.__name__ for e in discover().nodes if e.library == "flowkit"}
    assert {"LLM", "VAD", "STT", "TTS", "RoomSink", "RoomSource", "TurnDetector",
            "ToolRouter", "Resample", "Interruptions", "AgentStates"} <= names
    assert "FunctionNode" not in names


@pytest.mark.usefixtures("libraries")
def test_library_nodes_are_found_and_a_broken_library_is_reported() -> None:
    catalog = discover()
    fixture = [e for e in catalog.nodes if e.library == "fixture"]
    assert [e.cls.__name__ for e in fixture] == ["Shout"]
    [error] = catalog.errors
    assert error.library == "broken" and "needs a model that is not installed" in error.error


@pytest.mark.usefixtures("libraries")
def test_flowkit_nodes_lists_ports_and_parameters() -> None:
    result = CliRunner().invoke(main, ["nodes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Shout" in result.output and "text: str" in result.output
    assert "marks=1" in result.output and "TurnDetector" in result.output
    assert "library 'broken'" in result.output and "could not be loaded" in result.output
