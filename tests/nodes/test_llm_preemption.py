"""Preemptive generation: the LLM starts a reply on a TentativeTurn and keeps it only if the
committed turn matches (on the loop's virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.turn import TurnDetector
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply


def _tentative(text: str) -> fk.TentativeTurn:
    return fk.TentativeTurn(text=text)


def _turn(text: str) -> fk.UserTurn:
    return fk.UserTurn(turn_id=fk.new_turn_id(), text=text)


def _run_graph(
    llm: LLM,
    tentative: list[tuple[float, Any]],
    turns: list[tuple[float, Any]],
    router: ToolRouter | None = None,
    **inputs: list[tuple[float, Any]],
) -> tuple[fk.Graph, TimedCollect, Collect]:
    g = fk.Graph("preemptive")
    g.add(Script(*turns), name="turns") >> g.add(llm, name="llm")
    g.add(Script(*tentative), name="tentative") >> llm.tentative
    for port, script in inputs.items():
        g.add(Script(*script), name=port) >> llm.inputs[port]
    if router is not None:
        llm.tool_calls >> g.add(router, name="router") >> llm.tool_results
    text, metrics = g.add(TimedCollect(), name="text"), g.add(Collect(), name="metrics")
    llm >> text
    llm.metrics >> metrics
    return g, text, metrics


@pytest.mark.looptime
async def test_a_committed_turn_takes_over_the_request_started_for_it() -> None:
    fake = FakeLLM(["It is sunny in Paris."], ttft=0.3, token_gap=0.01)
    llm = LLM(fake, instructions="Be brief.")
    turn = _turn("weather in Paris?")
    g, text, metrics = _run_graph(
        llm, [(0.0, _tentative("weather in Paris?"))], [(0.5, turn)]
    )
    await fk.GraphRunner(g).run()
    # One request, made at 0 s: its first token (0.3 s) waited for the commit at 0.5 s and
    # went out then, where a request made at the commit would answer at 0.8 s.
    assert len(fake.requests) == 1 and fake.requests[0].completed
    assert [m.content for m in fake.requests[0].history] == ["Be brief.", "weather in Paris?"]
    first_at, first = text.items[0]
    assert first_at == pytest.approx(0.5, abs=0.01) and first.turn_id == turn.turn_id
    assert "".join(c.text for _, c in text.items) == "It is sunny in Paris."
    assert text.items[-1][1].final
    assert [(m.role, m.content) for m in llm.history.messages] == [
        ("system", "Be brief."), ("user", "weather in Paris?"),
        ("assistant", "It is sunny in Paris."),
    ]
    [m] = collected(metrics)
    assert m.labels["preemptive"] is True and m.labels["cancelled"] is False
    assert m.values["ttft"] == pytest.approx(0.3, abs=0.01)


@pytest.mark.looptime
async def test_a_turn_that_commits_with_other_text_discards_the_early_request() -> None:
    # The early answer is still streaming at the commit (0.5 s).
    fake = FakeLLM(["Which city do you mean?", "Sunny in Paris."], ttft=0.3, token_gap=0.1)
    llm = LLM(fake)
    turn = _turn("weather in Paris?")
    g, text, metrics = _run_graph(llm, [(0.0, _tentative("weather"))], [(0.5, turn)])
    await fk.GraphRunner(g).run()
    early, answer = fake.requests
    assert early.cancelled and not early.completed
    assert answer.history[-1].content == "weather in Paris?" and answer.completed
    assert "".join(c.text for _, c in text.items) == "Sunny in Paris."
    assert text.items[0][0] == pytest.approx(0.8, abs=0.01)
    assert not any("city" in c.text for _, c in text.items)
    assert [m.content for m in llm.history.messages] == ["weather in Paris?", "Sunny in Paris."]
    labels = sorted(
        (m.labels.get("preemptive", False), m.labels["cancelled"]) for m in collected(metrics)
    )
    assert labels == [(False, False), (True, True)]


@pytest.mark.looptime
async def test_a_newer_tentative_turn_replaces_the_request_of_the_last() -> None:
    fake = FakeLLM(lambda history: f"heard: {history[-1].content}", ttft=0.3, token_gap=0.0)
    llm = LLM(fake)
    turn = _turn("book a table for two")
    g, text, _ = _run_graph(
        llm,
        [(0.0, _tentative("book a table")), (0.2, _tentative("book a table for two"))],
        [(0.6, turn)],
    )
    await fk.GraphRunner(g).run()
    assert [r.history[-1].content for r in fake.requests] == [
        "book a table", "book a table for two",
    ]
    assert fake.requests[0].cancelled and fake.requests[1].completed
    assert "".join(c.text for _, c in text.items) == "heard: book a table for two"
    assert text.items[0][0] == pytest.approx(0.6, abs=0.01)  # the second request's token waited


@pytest.mark.looptime
async def test_nothing_is_spoken_for_a_tentative_turn_that_never_commits() -> None:
    fake = FakeLLM(["A reply nobody asked for."], ttft=0.1, token_gap=0.0)
    llm = LLM(fake)
    g, text, metrics = _run_graph(llm, [(0.0, _tentative("hmm"))], [])
    g.add(Script(end_at=2.0), name="keep_open") >> llm.requests
    await fk.GraphRunner(g).run()
    assert text.items == []
    assert llm.history.messages == ()
    [m] = collected(metrics)
    assert m.labels["preemptive"] is True


@pytest.mark.looptime
async def test_no_early_request_while_a_reply_is_under_way() -> None:
    fake = FakeLLM(["one two three four five six", "Sure."], ttft=0.1, token_gap=0.1)
    llm = LLM(fake)
    first, second = _turn("tell me a story"), _turn("stop")
    g, text, _ = _run_graph(llm, [(0.3, _tentative("stop"))], [(0.0, first), (0.45, second)])
    await fk.GraphRunner(g).run()
    # The story's cut changes the history the second turn is answered from: no request was
    # made for the tentative turn, and the second turn got its own.
    assert len(fake.requests) == 2
    assert fake.requests[1].history[-1].content == "stop"
    assert fake.requests[1].history[-2].interrupted
    assert "".join(c.text for _, c in text.items if c.turn_id == second.turn_id) == "Sure."


@pytest.mark.looptime
async def test_history_changed_since_the_early_request_discards_it() -> None:
    fake = FakeLLM(["early", "Sure."], ttft=0.3, token_gap=0.0)
    llm = LLM(fake)
    say = fk.ReplyRequest(turn_id=fk.new_turn_id(), say="One moment.")
    turn = _turn("and tomorrow?")  # newer than the reply from code
    g, text, _ = _run_graph(
        llm, [(0.0, _tentative("and tomorrow?"))], [(0.5, turn)], requests=[(0.1, say)]
    )
    await fk.GraphRunner(g).run()
    early, answer = fake.requests
    assert early.cancelled
    assert [m.content for m in answer.history] == ["One moment.", "and tomorrow?"]
    assert "".join(c.text for _, c in text.items if c.turn_id == turn.turn_id) == "Sure."


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up the weather.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


@pytest.mark.looptime
async def test_tools_of_an_early_request_are_called_only_once_the_turn_commits() -> None:
    call = ToolCallChunk("c1", "get_weather", '{"city": "Paris"}')
    fake = FakeLLM([FakeReply(tool_calls=(call,)), "It is sunny."], ttft=0.1, token_gap=0.0)
    llm = LLM(fake, tools=[get_weather])
    router = ToolRouter([get_weather])
    calls = TimedCollect()
    turn = _turn("weather in Paris?")
    g, text, _ = _run_graph(
        llm, [(0.0, _tentative("weather in Paris?"))], [(0.5, turn)], router=router
    )
    llm.tool_calls >> g.add(calls, name="calls")
    await fk.GraphRunner(g).run()
    [(called_at, tool_call)] = calls.items
    assert called_at == pytest.approx(0.5, abs=0.01) and tool_call.turn_id == turn.turn_id
    assert len(fake.requests) == 2  # the early one, and the one with the tool's result
    assert "".join(c.text for _, c in text.items) == "It is sunny."


@pytest.mark.looptime
async def test_a_failed_early_request_that_is_not_taken_over_harms_nothing() -> None:
    fake = FakeLLM(["Fine."], ttft=0.1, token_gap=0.0,
                   failures={0: RuntimeError("provider down")})
    llm = LLM(fake)
    turn = _turn("hello there")
    g, text, _ = _run_graph(llm, [(0.0, _tentative("hello"))], [(0.5, turn)])
    await fk.GraphRunner(g).run()
    assert isinstance(fake.requests[0].error, RuntimeError)
    assert "".join(c.text for _, c in text.items) == "Fine."


class _RefusesFirst(FakeLLM):
    """Raises from ``chat`` itself (before any stream) on its first call."""

    calls = 0

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("bad request")
        return super().chat(*args, **kwargs)


@pytest.mark.looptime
async def test_a_provider_refusing_the_early_request_does_not_fail_the_node() -> None:
    fake = _RefusesFirst(["Fine."], ttft=0.1, token_gap=0.0)
    llm = LLM(fake)
    turn = _turn("hello")
    g, text, _ = _run_graph(llm, [(0.0, _tentative("hello"))], [(0.5, turn)])
    runner = fk.GraphRunner(g)
    await runner.run()
    assert not runner.node_errors
    assert "".join(c.text for _, c in text.items) == "Fine."
    assert text.items[0][0] == pytest.approx(0.6, abs=0.01)  # asked at the commit


@pytest.mark.looptime
async def test_a_cut_reply_cancels_the_request_it_took_over() -> None:
    fake = FakeLLM(["one two three four five six seven eight"], ttft=0.3, token_gap=0.2)
    llm = LLM(fake)
    turn = _turn("tell me a story")
    flush = fk.Interrupt(turn_id=turn.turn_id, action=fk.InterruptAction.FLUSH)
    g, text, _ = _run_graph(
        llm, [(0.0, _tentative("tell me a story"))], [(0.5, turn)],
        interrupt=[(0.7, flush)],
    )
    await fk.GraphRunner(g).run()
    [request] = fake.requests
    assert request.cancelled and not request.completed
    assert not any(c.final for _, c in text.items)


@pytest.mark.looptime
async def test_turn_detector_and_llm_together_answer_during_the_endpointing_delay() -> None:
    fake = FakeLLM(["Hello!"], ttft=0.3, token_gap=0.0)
    detector = TurnDetector(min_endpointing_delay=0.5, user_away_timeout=None)
    llm = LLM(fake)
    g = fk.Graph("detector-and-llm")
    start, end = fk.VADEventKind.START_OF_SPEECH, fk.VADEventKind.END_OF_SPEECH
    node = g.add(detector, name="turns")
    final = fk.Transcript(text="hi there", final=True)
    g.add(Script((0.05, final), end_at=2.0), name="stt") >> node
    g.add(Script((0.0, fk.VADEvent(kind=start)), (0.1, fk.VADEvent(kind=end))),
          name="vad") >> node.vad
    node >> g.add(llm, name="llm")
    node.tentative >> llm.tentative
    text = g.add(TimedCollect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()
    # Speech ends at 0.1 s and the turn commits at 0.6; the request started at 0.1, so its
    # first token (0.4) is out at the commit, not 0.3 s after it.
    [request] = fake.requests
    assert [m.content for m in request.history] == ["hi there"]
    assert text.items[0][0] == pytest.approx(0.6, abs=0.01)
    assert "".join(c.text for _, c in text.items) == "Hello!"
