import asyncio
from typing import Any

import pytest
from support import Collect, Script, TimedCollect, collected, to_billing

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.llm_tool_rounds import LATE_RESULT_NOTE
from flowkit.nodes.tools import ToolRouter
from flowkit.providers.llm import ToolCallChunk
from flowkit.providers.sentences import SentenceSplitter
from flowkit.testing import FakeLLM, FakeReply


def _turn(text: str, turn_id: int | None = None) -> fk.UserTurn:
    return fk.UserTurn(turn_id=turn_id or fk.new_turn_id(), text=text)


def _reply_text(chunks: list[fk.TextChunk], turn_id: int) -> str:
    return "".join(c.text for c in chunks if c.turn_id == turn_id)


def _graph(llm: LLM, steps: list[tuple[float, Any]], router: ToolRouter | None = None,
           **inputs: list[tuple[float, Any]]) -> tuple[fk.Graph, Collect]:
    g = fk.Graph("llm")
    g.add(Script(*steps), name="turns") >> g.add(llm, name="llm")
    for port, script in inputs.items():
        g.add(Script(*script), name=port) >> llm.inputs[port]
    if router is not None:
        llm.tool_calls >> g.add(router, name="router") >> llm.tool_results
    text = g.add(Collect(), name="text")
    llm >> text
    return g, text


@pytest.mark.looptime
async def test_a_turn_gets_a_streamed_reply_and_the_history_grows() -> None:
    fake = FakeLLM(["Hello there, friend."], ttft=0.3, token_gap=0.05)
    llm = LLM(fake, instructions="Be brief.")
    turn = _turn("hi")
    g, text = _graph(llm, [(0, turn)])
    metrics = g.add(Collect(), name="metrics")
    llm.metrics >> metrics
    await fk.GraphRunner(g).run()
    chunks = collected(text)
    assert _reply_text(chunks, turn.turn_id) == "Hello there, friend."
    assert chunks[-1].final and all(not c.final for c in chunks[:-1])
    assert [(m.role, m.content) for m in llm.history.messages] == [
        ("system", "Be brief."), ("user", "hi"), ("assistant", "Hello there, friend."),
    ]
    [m] = collected(metrics)
    assert m.values["ttft"] == pytest.approx(0.3, abs=0.01)


@fk.function_tool
async def get_weather(city: str) -> str:
    """Look up today's weather for a city.

    Args:
        city: The city.
    """
    await asyncio.sleep(1.0)
    return f"sunny in {city}"


@fk.function_tool
async def get_time(city: str) -> str:
    """Look up the local time of a city."""
    await asyncio.sleep(1.0)
    return f"noon in {city}"


@pytest.mark.looptime
async def test_tool_calls_run_in_parallel_and_the_reply_continues() -> None:
    fake = FakeLLM([
        FakeReply(tool_calls=(
            ToolCallChunk("c1", "get_weather", '{"city": "Paris"}'),
            ToolCallChunk("c2", "get_time", '{"city": "Paris"}'),
        )),
        "It is sunny and noon.",
    ], ttft=0.1, token_gap=0.0)
    llm = LLM(fake, tools=[get_weather, get_time])
    turn = _turn("weather and time in Paris?")
    g, text = _graph(llm, [(0, turn)], router=ToolRouter([get_weather, get_time]))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fk.GraphRunner(g).run()
    assert _reply_text(collected(text), turn.turn_id) == "It is sunny and noon."
    assert loop.time() - start == pytest.approx(0.1 + 1.0 + 0.1, abs=0.05)  # parallel: 1 s
    second = fake.requests[1].history
    tool_messages = [m.content for m in second if m.role == "tool"]
    assert tool_messages == ["sunny in Paris", "noon in Paris"]
    assert [t.name for t in fake.requests[0].tools] == ["get_weather", "get_time"]


@pytest.mark.looptime
async def test_text_before_a_tool_round_is_a_complete_sentence_for_the_tts() -> None:
    fake = FakeLLM([
        FakeReply(text="Let me check that for you.",
                  tool_calls=(ToolCallChunk("c1", "get_weather", '{"city": "Paris"}'),)),
        "It is sunny.",
    ], ttft=0.1, token_gap=0.0)
    llm = LLM(fake, tools=[get_weather])
    turn = _turn("weather in Paris?")
    g, text = _graph(llm, [(0, turn)], router=ToolRouter([get_weather]))
    await fk.GraphRunner(g).run()
    chunks = collected(text)
    # The TTS node's splitter completes the first sentence before the tool's second of work,
    # and the two requests' words do not run together.
    assert _reply_text(chunks, turn.turn_id) == "Let me check that for you. It is sunny."
    after_tool = next(i for i, c in enumerate(chunks) if c.text.startswith("It"))
    before_tool = "".join(c.text for c in chunks[:after_tool])
    assert SentenceSplitter().push(before_tool) == ["Let me check that for you."]
    # The history keeps what the model wrote, each request's text as it was.
    assistant = [m.content for m in fake.requests[1].history if m.role == "assistant"]
    assert assistant == ["Let me check that for you."]


@fk.function_tool
async def flaky(city: str) -> str:
    """A tool that fails."""
    raise fk.ToolError(f"no station in {city}")


@pytest.mark.looptime
async def test_tool_errors_go_back_to_the_llm_and_steps_are_limited() -> None:
    call = FakeReply(tool_calls=(ToolCallChunk("c", "flaky", '{"city": "Atlantis"}'),))
    fake = FakeLLM([call, call, "Sorry, I could not find it."], ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[flaky], max_tool_steps=2)
    turn = _turn("weather in Atlantis?")
    g, text = _graph(llm, [(0, turn)], router=ToolRouter([flaky]))
    await fk.GraphRunner(g).run()
    assert [r.tool_choice for r in fake.requests] == ["auto", "auto", "none"]
    assert fake.requests[2].tools == ()
    errors = [m.content for m in fake.requests[1].history if m.role == "tool"]
    assert errors == ["no station in Atlantis"]
    assert _reply_text(collected(text), turn.turn_id) == "Sorry, I could not find it."


@fk.function_tool
async def hang_up() -> None:
    """End the call."""
    raise fk.StopResponse()


@pytest.mark.looptime
async def test_stop_response_ends_the_reply_without_more_text() -> None:
    fake = FakeLLM([FakeReply(text="Goodbye!", tool_calls=(ToolCallChunk("c", "hang_up"),))])
    llm = LLM(fake, tools=[hang_up])
    turn = _turn("bye")
    g, text = _graph(llm, [(0, turn)], router=ToolRouter([hang_up]))
    await fk.GraphRunner(g).run()
    assert len(fake.requests) == 1
    # The space came before the tool ran: the text before a tool round is a whole sentence.
    assert collected(text)[-1].final and _reply_text(collected(text), turn.turn_id) == "Goodbye! "


@pytest.mark.looptime
async def test_handoff_switches_instructions_and_tools_and_keeps_history() -> None:
    fake = FakeLLM([
        FakeReply(tool_calls=(ToolCallChunk("c1", "to_billing"),)),
        "Billing here.",
        FakeReply(tool_calls=(ToolCallChunk("c2", "refund", '{"order": "42"}'),)),
        "Done.",
    ], ttft=0.0, token_gap=0.0)
    llm = LLM(fake, instructions="You are the front desk.", tools=[to_billing])
    first, second = _turn("I need a refund"), _turn("order 42")
    g, text = _graph(llm, [(0, first), (1.0, second)], router=ToolRouter([to_billing]))
    await fk.GraphRunner(g).run()
    assert fake.requests[1].history[0].content == "You are the billing agent."
    assert [t.name for t in fake.requests[2].tools] == ["refund"]
    assert any(m.content == "I need a refund" for m in fake.requests[2].history)
    assert _reply_text(collected(text), second.turn_id) == "Done."
    results = [m.content for m in fake.requests[3].history if m.role == "tool"]
    assert results[-1] == "refunded 42"


@pytest.mark.looptime
async def test_a_new_turn_cancels_the_reply_in_flight() -> None:
    # The second reply is slow, so an uncancelled first request would have time to finish.
    fake = FakeLLM(["one two three four five six seven eight", FakeReply(text="Sure.", ttft=2.0)],
                   ttft=0.1, token_gap=0.1)
    llm = LLM(fake)
    first, second = _turn("tell me a story"), _turn("actually, stop")
    g, text = _graph(llm, [(0, first), (0.35, second)])
    await fk.GraphRunner(g).run()
    assert fake.requests[0].cancelled and not fake.requests[0].completed
    assert len(fake.requests[0].chunks) <= 4  # cancelled at 0.35 s, not at the end
    assert fake.requests[1].completed
    roles = [(m.role, m.content, m.interrupted) for m in llm.history.messages]
    assert roles[0] == ("user", "tell me a story", False)
    assert roles[1][0] == "assistant" and roles[1][2] is True
    assert roles[1][1] and "eight" not in roles[1][1]
    assert roles[2:] == [("user", "actually, stop", False), ("assistant", "Sure.", False)]
    assert not any(c.final for c in collected(text) if c.turn_id == first.turn_id)


@pytest.mark.looptime
async def test_flush_cancels_and_playout_truncates_history_to_what_was_played() -> None:
    fake = FakeLLM(["The weather is sunny and warm today."], ttft=0.1, token_gap=0.0)
    llm = LLM(fake)
    turn = _turn("weather?")
    played = fk.Playout(turn_id=turn.turn_id, event=fk.PlayoutEvent.INTERRUPTED,
                        played_text="The weather is")
    g, _ = _graph(llm, [(0, turn)], playout=[(1.0, played)])
    await fk.GraphRunner(g).run()
    [*_, last] = llm.history.messages
    assert (last.role, last.content, last.interrupted) == ("assistant", "The weather is", True)


def _round_then_text() -> FakeLLM:
    return FakeLLM([
        FakeReply(text="Let me check.", tool_calls=(
            ToolCallChunk("c1", "get_weather", '{"city": "Paris"}'),
        )),
        "It is sunny and warm in Paris today.",
    ], ttft=0.1, token_gap=0.0)


@pytest.mark.looptime
async def test_a_reply_cut_after_its_tool_round_keeps_the_round_whole() -> None:
    # The speaker's played text covers the whole reply, both of its requests.
    llm = LLM(_round_then_text(), tools=[get_weather])
    turn = _turn("weather?")
    played = fk.Playout(turn_id=turn.turn_id, event=fk.PlayoutEvent.INTERRUPTED,
                        played_text="Let me check. It is sunny")
    g, _ = _graph(llm, [(0, turn)], ToolRouter([get_weather]), playout=[(3.0, played)])
    await fk.GraphRunner(g).run()
    assert [(m.role, m.content, m.interrupted) for m in llm.history.messages] == [
        ("user", "weather?", False),
        ("assistant", "Let me check.", False),
        ("tool", "sunny in Paris", False),
        ("assistant", "It is sunny", True),
    ]


@pytest.mark.looptime
async def test_a_reply_cut_while_its_tool_runs_keeps_what_was_heard_of_the_call() -> None:
    llm = LLM(_round_then_text(), tools=[get_weather])
    turn, next_turn = _turn("weather?"), _turn("never mind")
    played = fk.Playout(turn_id=turn.turn_id, event=fk.PlayoutEvent.INTERRUPTED,
                        played_text="Let me")
    # The tool takes 1 s; the speaker stops the reply at 0.5 s, the user goes on at 0.6 s.
    g, _ = _graph(llm, [(0, turn), (0.6, next_turn)], ToolRouter([get_weather]),
                  playout=[(0.5, played)])
    await fk.GraphRunner(g).run()
    calling, answer = llm.history.messages[1], llm.history.messages[2]
    assert (calling.content, calling.interrupted) == ("Let me", True)
    assert [c.call_id for c in calling.tool_calls] == ["c1"]
    # The tool finished after the cut: its result stands in the history, noted as unheard.
    assert (answer.role, answer.tool_call_id) == ("tool", "c1")
    assert answer.content == f"sunny in Paris\n({LATE_RESULT_NOTE})"
    assert [m.role for m in llm.history.messages[3:]] == ["user", "assistant"]


@pytest.mark.looptime
async def test_interrupt_flush_cancels_the_request() -> None:
    fake = FakeLLM(["a b c d e f g h i j", "later"], ttft=0.1, token_gap=0.2)
    llm = LLM(fake)
    turn, later = _turn("go"), _turn("later")
    flush = fk.Interrupt(turn_id=turn.turn_id, action=fk.InterruptAction.FLUSH)
    stale = fk.Interrupt(turn_id=turn.turn_id - 1, action=fk.InterruptAction.FLUSH)
    # The later turn keeps the graph running past the end of an uncancelled first reply.
    g, text = _graph(llm, [(0, turn), (5.0, later)], interrupt=[(0.2, stale), (0.4, flush)])
    await fk.GraphRunner(g).run()
    assert fake.requests[0].cancelled
    first = [c for c in collected(text) if c.turn_id == turn.turn_id]
    assert 1 <= len(first) <= 2 and not any(c.final for c in first)


@pytest.mark.looptime
async def test_say_and_generate_reply_from_code() -> None:
    fake = FakeLLM(["Welcome back!"], ttft=0.0, token_gap=0.0)
    llm = LLM(fake, instructions="Be kind.")
    say = fk.ReplyRequest(say="Hello, I am your assistant.")
    greet = fk.ReplyRequest(instructions="Greet the user by name: Ada.")
    g, text = _graph(llm, [], requests=[(0, say), (1.0, greet)])
    await fk.GraphRunner(g).run()
    chunks = collected(text)
    assert "".join(c.text for c in chunks) == "Hello, I am your assistant.Welcome back!"
    assert len({c.turn_id for c in chunks}) == 2 and all(c.turn_id > 0 for c in chunks)
    assert fake.requests[0].history[0].content == "Be kind.\n\nGreet the user by name: Ada."
    assert llm.history.instructions == "Be kind."
    assert [m.content for m in llm.history.messages if m.role == "assistant"] == [
        "Hello, I am your assistant.", "Welcome back!",
    ]


def _timed_graph(llm: LLM, requests: list[tuple[float, Any]], turns: list[tuple[float, Any]],
                 playout: list[tuple[float, Any]] | None) -> tuple[fk.Graph, TimedCollect]:
    g = fk.Graph("llm")
    g.add(Script(*turns, end_at=8.0), name="turns") >> g.add(llm, name="llm")
    g.add(Script(*requests), name="requests") >> llm.requests
    if playout is not None:
        g.add(Script(*playout), name="playout") >> llm.playout
    text = g.add(TimedCollect(), name="text")
    llm >> text
    return g, text


@pytest.mark.parametrize("kind", ["generate_reply", "say"])
@pytest.mark.looptime
async def test_a_turn_during_a_reply_that_may_not_be_interrupted_waits_until_it_has_played(
    kind: str,
) -> None:
    fake = FakeLLM(["one two three four five six", "Sure."], ttft=0.1, token_gap=0.1)
    llm = LLM(fake)
    first = fk.new_turn_id()
    request = (
        fk.ReplyRequest(turn_id=first, instructions="Tell a story.", allow_interruptions=False)
        if kind == "generate_reply"
        else fk.ReplyRequest(turn_id=first, say="Please listen.", allow_interruptions=False)
    )
    turn = _turn("stop that")
    finished = fk.Playout(turn_id=first, event=fk.PlayoutEvent.FINISHED)
    g, text = _timed_graph(llm, [(0, request)], [(0.3, turn)], playout=[(3.0, finished)])
    await fk.GraphRunner(g).run()
    protected = [(t, c) for t, c in text.items if c.turn_id == first]
    answer = [(t, c) for t, c in text.items if c.turn_id == turn.turn_id]
    # The protected reply was written whole, flagged for the speaker and the barge-in node.
    assert protected[-1][1].final and all(not c.allow_interruptions for _, c in protected)
    if kind == "generate_reply":
        assert fake.requests[0].completed and not fake.requests[0].cancelled
    # The turn was answered only once the speaker reported the reply finished.
    assert answer and answer[0][0] >= 3.0 and answer[-1][1].final
    assert all(c.allow_interruptions for _, c in answer)
    users = [m.content for m in llm.history.messages if m.role == "user"]
    assert users == ["stop that"]


@pytest.mark.looptime
async def test_without_a_speaker_a_reply_that_may_not_be_interrupted_protects_its_text() -> None:
    fake = FakeLLM(["one two three four five six", "Sure."], ttft=0.1, token_gap=0.1)
    llm = LLM(fake)
    first = fk.new_turn_id()
    request = fk.ReplyRequest(turn_id=first, instructions="Go.", allow_interruptions=False)
    turn = _turn("stop that")
    g, text = _timed_graph(llm, [(0, request)], [(0.3, turn)], playout=None)
    await fk.GraphRunner(g).run()
    assert fake.requests[0].completed and not fake.requests[0].cancelled
    [end_of_protected] = [t for t, c in text.items if c.turn_id == first and c.final]
    answer = [t for t, c in text.items if c.turn_id == turn.turn_id]
    # No playout input: the turn waits only for the protected reply's text (about 0.6 s).
    assert answer and end_of_protected <= answer[0] < 3.0


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.looptime
async def test_a_flush_that_is_not_forced_leaves_the_protected_reply_being_written(
    force: bool,
) -> None:
    fake = FakeLLM(["one two three four five six"], ttft=0.1, token_gap=0.1)
    llm = LLM(fake)
    first = fk.new_turn_id()
    request = fk.ReplyRequest(turn_id=first, instructions="Go.", allow_interruptions=False)
    flush = fk.Interrupt(turn_id=first, action=fk.InterruptAction.FLUSH, force=force)
    g = fk.Graph("llm")
    g.add(Script(end_at=3.0), name="turns") >> g.add(llm, name="llm")
    g.add(Script((0, request)), name="requests") >> llm.requests
    g.add(Script((0.3, flush)), name="interrupts") >> llm.interrupt
    text = g.add(TimedCollect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()
    written = "".join(c.text for _, c in text.items if c.turn_id == first)
    assert fake.requests[0].cancelled is force
    assert (written == "one two three four five six") is not force


@pytest.mark.parametrize("end", ["flushed", "failed"])
@pytest.mark.looptime
async def test_a_protected_reply_that_never_plays_out_does_not_keep_turns_waiting(
    end: str,
) -> None:
    # Flushed on purpose, or its request failed: no end of it may ever be played, and the
    # turn that waited is answered at once, not never.
    failures = {0: RuntimeError("provider down")} if end == "failed" else None
    fake = FakeLLM(["one two three four five six", "Sure."], ttft=0.1, token_gap=0.1,
                   failures=failures)
    llm = LLM(fake)
    first = fk.new_turn_id()
    request = fk.ReplyRequest(turn_id=first, instructions="Go.", allow_interruptions=False)
    turn = _turn("stop that")
    flush = fk.Interrupt(turn_id=first, action=fk.InterruptAction.FLUSH)
    g = fk.Graph("llm")
    g.add(Script((0.3, turn), end_at=8.0), name="turns") >> g.add(llm, name="llm")
    g.add(Script((0, request)), name="requests") >> llm.requests
    # A speaker that never reports: only the flush or the failure can end the protection.
    g.add(Script(end_at=8.0), name="playout") >> llm.playout
    if end == "flushed":
        g.add(Script((0.35, flush)), name="interrupts") >> llm.interrupt
    text = g.add(TimedCollect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()
    answer = [t for t, c in text.items if c.turn_id == turn.turn_id]
    assert answer and answer[0] < 1.0


@pytest.mark.looptime
async def test_a_stale_turn_is_ignored() -> None:
    fake = FakeLLM(["First.", "never"], ttft=0.0, token_gap=0.0)
    llm = LLM(fake)
    newer = _turn("newer")
    older = fk.UserTurn(turn_id=newer.turn_id - 1, text="older")
    g, _ = _graph(llm, [(0, newer), (0.5, older)])
    await fk.GraphRunner(g).run()
    assert len(fake.requests) == 1
    assert [m.content for m in llm.history.messages if m.role == "user"] == ["newer"]


def test_llm_refuses_what_is_not_a_provider() -> None:
    with pytest.raises(TypeError, match="an LLM provider has name and chat"):
        LLM(provider="gpt")  # type: ignore[arg-type]



@pytest.mark.looptime
async def test_a_reply_whose_model_fails_midway_is_ended_and_its_words_kept() -> None:
    # The provider fails after four tokens (its retries and fallbacks spent): those words
    # were sent to TTS and are heard, so the history keeps them, marked cut off, before the
    # next user message; and the reply is ended, or the speaker would hold it open.
    cut = FakeReply(text="The weather in Paris is sunny today", error=RuntimeError("down"),
                    error_after=4)
    fake = FakeLLM([cut, "Fine."], ttft=0.1, token_gap=0.05)
    llm = LLM(fake)
    first, second = _turn("weather?"), _turn("and?")
    g, text = _graph(llm, [(0, first), (2.0, second)])
    runner = fk.GraphRunner(g)
    errors: list[Any] = []
    runner.errors.subscribe(errors.append)
    await runner.run()
    chunks = [c for c in collected(text) if c.turn_id == first.turn_id]
    assert "".join(c.text for c in chunks) == "The weather in Paris"
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    assert [(m.role, m.content, m.interrupted) for m in llm.history.messages] == [
        ("user", "weather?", False), ("assistant", "The weather in Paris", True),
        ("user", "and?", False), ("assistant", "Fine.", False),
    ]
    assert [e.node for e in errors] == ["llm"] and "down" in str(errors[0].error)


@pytest.mark.looptime
async def test_a_reply_whose_model_fails_after_a_tool_round_keeps_the_round() -> None:
    # The failure comes in the request after the tools answered: the round stays as it
    # was, and the words streamed since join the history after it.
    call = ToolCallChunk(call_id="c1", name="get_weather", arguments='{"city": "Paris"}')
    fake = FakeLLM([
        FakeReply(text="Let me check.", tool_calls=(call,)),
        FakeReply(text="It is sunny and warm", error=RuntimeError("down"), error_after=2),
    ], ttft=0.1, token_gap=0.05)
    llm = LLM(fake, tools=[get_weather])
    turn = _turn("weather in Paris?")
    g, text = _graph(llm, [(0, turn)], router=ToolRouter([get_weather]))
    await fk.GraphRunner(g).run()
    chunks = [c for c in collected(text) if c.turn_id == turn.turn_id]
    assert chunks[-1].final
    roles = [(m.role, m.content, m.interrupted) for m in llm.history.messages]
    assert roles == [
        ("user", "weather in Paris?", False),
        ("assistant", "Let me check.", False),
        ("tool", "sunny in Paris", False),
        ("assistant", "It is", True),
    ]


@pytest.mark.looptime
async def test_the_speaker_plays_a_failed_reply_to_its_last_word_and_reports_its_end() -> None:
    from flowkit.nodes.room import RoomSink
    from flowkit.nodes.tts import TTS
    from flowkit.testing.fakes import FakeTTS
    from flowkit.testing.memory_io import MemoryIO

    cut = FakeReply(text="The weather in Paris is sunny today", error=RuntimeError("down"),
                    error_after=4)
    llm = LLM(FakeLLM([cut], ttft=0.1, token_gap=0.05))
    turn = _turn("weather?")
    g = fk.Graph("failed reply")
    g.add(Script((0, turn), end_at=5.0), name="turns") >> g.add(llm, name="llm")
    sink = g.add(RoomSink(publish_transcripts=False), name="speaker")
    llm >> g.add(TTS(FakeTTS(seconds_per_char=0.05, ttfa=0.1)), name="tts") >> sink
    sink.playout >> llm.playout
    reports = g.add(TimedCollect(), name="reports")
    sink.playout >> reports
    io = MemoryIO(paced=True)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    events = [(t, r.event) for t, r in reports.items if r.turn_id == turn.turn_id]
    assert [event for _, event in events] == [fk.PlayoutEvent.STARTED, fk.PlayoutEvent.FINISHED]
    # Spoken at once and ended with its last word (a paced write returns as its frame
    # starts), not held until the graph closed (the turns end at 5 s).
    assert events[0][0] < 0.5
    assert events[1][0] == pytest.approx(io.played[-1][0], abs=0.001) and events[1][0] < 1.5
    heard = sum(frame.samples_per_channel / frame.sample_rate for _, frame in io.played)
    assert heard == pytest.approx(len("The weather in Paris") * 0.05, abs=0.03)


@pytest.mark.looptime
async def test_say_with_recorded_audio_plays_it_and_keeps_its_text() -> None:
    from flowkit.audio.frames import silence
    from flowkit.nodes.room import RoomSink
    from flowkit.nodes.tts import TTS
    from flowkit.testing.fakes import FakeTTS
    from flowkit.testing.memory_io import MemoryIO

    notice = "This call may be recorded."
    recording = tuple(silence(20, 16_000) for _ in range(100))  # 2 s at 16 kHz, in 20 ms frames
    tts_provider = FakeTTS(sample_rate=24_000, seconds_per_char=0.05)
    llm = LLM(FakeLLM([]), instructions="Be kind.")
    g = fk.Graph("recorded say")
    g.add(Script(end_at=5.0), name="turns") >> g.add(llm, name="llm")
    g.add(Script((0, fk.ReplyRequest(say=notice, audio=recording))), name="requests") >> (
        llm.requests
    )
    sink = g.add(RoomSink(), name="speaker")
    llm >> g.add(TTS(tts_provider), name="tts") >> sink
    sink.playout >> llm.playout
    spoken = g.add(Collect(), name="spoken")
    sink.transcripts >> spoken
    io = MemoryIO(paced=True)
    await fk.GraphRunner(g, job=fk.JobContext(io=io)).run()
    # The recording was played, at the voice's rate, and nothing was synthesised.
    assert tts_provider.texts == []
    assert {frame.sample_rate for _, frame in io.played} == {24_000}
    heard = sum(frame.samples_per_channel / frame.sample_rate for _, frame in io.played)
    assert heard == pytest.approx(2.0, abs=0.001)
    # Its text is the transcript and joins the history, as a say's does.
    assert [t.text for t in collected(spoken)] == [notice]
    assert [t.text for t in io.transcripts if t.final] == [notice]
    assert [m.content for m in llm.history.messages if m.role == "assistant"] == [notice]


def test_a_recorded_say_needs_its_text_frames_and_one_format() -> None:
    from flowkit.audio.frames import silence

    with pytest.raises(ValueError, match=r"needs say=\.\.\. too"):
        fk.ReplyRequest(audio=(silence(20, 16_000),))
    with pytest.raises(ValueError, match="has no frames to play"):
        fk.ReplyRequest(say="Hi.", audio=())
    with pytest.raises(ValueError, match="mixes formats: a 48000 Hz, 1-channel frame after "
                       "16000 Hz, 1-channel ones"):
        fk.ReplyRequest(say="Hi.", audio=(silence(20, 16_000), silence(20, 48_000)))


@pytest.mark.looptime
async def test_a_say_kept_out_of_the_history_is_spoken_and_never_read_by_the_model() -> None:
    fake = FakeLLM(["Sure."], ttft=0.0, token_gap=0.0)
    llm = LLM(fake, instructions="Be kind.")
    notice = fk.ReplyRequest(say="This call is recorded.", add_to_history=False)
    # (The turn's id is drawn when it is said, after the say's.)
    g, text = _graph(llm, [(1.0, lambda: _turn("hello"))], requests=[(0, notice)])
    await fk.GraphRunner(g).run()
    assert "".join(c.text for c in collected(text)) == "This call is recorded.Sure."
    assert [(m.role, m.content) for m in fake.requests[0].history] == [
        ("system", "Be kind."), ("user", "hello"),
    ]
    with pytest.raises(ValueError, match=r"add_to_history=False\) applies to a say"):
        fk.ReplyRequest(instructions="Greet.", add_to_history=False)
