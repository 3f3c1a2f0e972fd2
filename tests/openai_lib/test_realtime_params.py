"""RealtimeModel's parameters: what is refused when the node is built, and what is sent."""

from __future__ import annotations

import json

import pydantic
import pytest
from flowkit_openai.realtime import RealtimeModel, SemanticVAD, ServerVAD
from flowkit_openai.realtime.link import realtime_url
from flowkit_openai.realtime.options import SessionSettings

import flowkit as fk


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up today's weather for a city."""
    return city


@fk.function_tool(name="get_weather")
async def another_weather(city: str) -> str:
    """Another tool of the same name."""
    return city


def not_a_tool(city: str) -> str:
    return city


@pytest.mark.parametrize(("options", "said"), [
    ({"voice": ""}, "voice: String should have at least 1 character"),
    ({"model": ""}, "model: String should have at least 1 character"),
    ({"speed": 3.0}, "speed: Input should be less than or equal to 1.5"),
    ({"append_ms": 0}, "append_ms: Input should be greater than or equal to 10"),
    ({"timeout": 0}, "timeout: Input should be greater than 0"),
    ({"max_reconnects": -1}, "max_reconnects: Input should be greater than or equal to 0"),
    ({"noise_reduction": "studio"}, "noise_reduction: Input should be 'near_field' or "
                                    "'far_field'"),
    ({"output_modality": "speech"}, "output_modality: Input should be 'audio' or 'text'"),
    ({"tools": [not_a_tool]}, "is not a tool; decorate the function with @flowkit.function_tool"),
    ({"tools": [get_weather, another_weather]}, "two tools are named 'get_weather'; rename one"),
    ({"tools": [get_weather], "tool_choice": "lookup"},
     "tool_choice 'lookup' is neither auto, none, required nor one of the tools (get_weather)"),
])
def test_bad_parameters_fail_when_the_node_is_built(options: dict[str, object], said: str) -> None:
    with pytest.raises(fk.NodeParamsError) as raised:
        RealtimeModel(**options)  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("RealtimeModel: invalid parameters: ")
    assert said in message
    assert "accepted parameters: model, voice, instructions" in message


@pytest.mark.parametrize(("build", "said"), [
    (lambda: ServerVAD(threshold=1.5), "Input should be less than or equal to 1"),
    (lambda: ServerVAD(silence_duration_ms=-1), "Input should be greater than or equal to 0"),
    (lambda: ServerVAD(silence_ms=200), "Extra inputs are not permitted"),
    (lambda: SemanticVAD(eagerness="fast"), "Input should be 'low', 'medium', 'high' or 'auto'"),
])
def test_bad_turn_detection_fails_when_it_is_built(build: object, said: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=said):
        build()  # type: ignore[operator]


def test_the_key_stays_out_of_the_graph_spec() -> None:
    g = fk.Graph("spec")
    g.add(RealtimeModel(api_key="sk-secret-123", base_url="http://h/v1",
                        turn_detection=SemanticVAD(eagerness="low")), name="model")
    spec = g.spec().model_dump_json()
    assert "sk-secret-123" not in spec
    [node] = g.spec().nodes
    assert node.params["base_url"] == "http://h/v1"
    assert json.loads(spec)["nodes"][0]["params"]["turn_detection"]["eagerness"] == "low"


def test_the_session_update_for_each_kind_of_turn_detection() -> None:
    def session(detection: ServerVAD | SemanticVAD | None, **extra: object) -> dict[str, object]:
        settings = SessionSettings(model="m", voice="v", turn_detection=detection,
                                   transcription_model=None, **extra)  # type: ignore[arg-type]
        return settings.payload("Be kind.", [get_weather.spec()], "get_weather")

    semantic = session(SemanticVAD(eagerness="high", interrupt_response=False))
    audio_in = semantic["audio"]["input"]  # type: ignore[index]
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "high",
                                          "create_response": True, "interrupt_response": False}
    assert "transcription" not in audio_in
    assert semantic["tool_choice"] == {"type": "function", "name": "get_weather"}
    manual = session(None, speed=1.2, max_output_tokens=200, noise_reduction="far_field")
    assert manual["audio"]["input"]["turn_detection"] is None  # type: ignore[index]
    assert manual["audio"]["input"]["noise_reduction"] == {"type": "far_field"}  # type: ignore[index]
    assert manual["audio"]["output"]["speed"] == 1.2  # type: ignore[index]
    assert manual["max_output_tokens"] == 200
    assert manual["output_modalities"] == ["audio"]
    assert session(None, output_modality="text")["output_modalities"] == ["text"]
    server = session(ServerVAD(idle_timeout_ms=8000))["audio"]["input"]  # type: ignore[index]
    assert server["turn_detection"] == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 500, "create_response": True, "interrupt_response": True,
        "idle_timeout_ms": 8000,
    }


def test_the_websocket_address() -> None:
    assert realtime_url("https://api.openai.com/v1", "gpt-realtime") == (
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert realtime_url("http://127.0.0.1:8000/v1/", "m") == "ws://127.0.0.1:8000/v1/realtime?model=m"
