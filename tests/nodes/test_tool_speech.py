"""Tools that speak while they run (``ctx.say``): ToolRouter.speech → LLM.tool_speech → TTS."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.text import ReplyGuard
from flowkit.nodes.tools import ToolRouter
from flowkit.nodes.tts import TTS
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply, Harness
from flowkit.testing.fakes import FakeTTS


@fk.function_tool
async def look_up_order(ctx: fk.RunContext, order: str) -> str:
    """Find an order in the (slow) order system.

    Args:
        order: The order number.
    """
    await ctx.say("One moment.")  # shorter than a sentence the TTS node would send alone
    await asyncio.sleep(2.0)
    return f"order {order} ships tomorrow"


def _calling(tool: str, arguments: str, text: str = "") -> FakeReply:
    return FakeReply(text=text, tool_calls=(ToolCallChunk("c1", tool, arguments),))


def _graph(
    llm: LLM,
    router: ToolRouter,
    turns: list[tuple[float, fk.UserTurn]],
    *,
    speech: bool = True,
    end_at: float | None = None,
) -> tuple[fk.Graph, Collect, TimedCollect, FakeTTS]:
    g = fk.Graph("tool-speech")
    g.add(Script(*turns, end_at=end_at), name="turns") >> g.add(llm, name="llm")
    llm.tool_calls >> g.add(router, name="router") >> llm.tool_results
    if speech:
        router.speech >> llm.tool_speech
    fake_tts = FakeTTS(seconds_per_char=0.01, ttfa=0.05)
    text, audio = g.add(Collect(), name="text"), g.add(TimedCollect(), name="audio")
    tts = g.add(TTS(fake_tts), name="tts")
    llm >> text
    llm >> tts >> audio
    return g, text, audio, fake_tts


def _first_audio(audio: TimedCollect, start: float) -> dict[str, float]:
    """When each sentence's first frame came out, from the graph's start."""
    first: dict[str, float] = {}
    for at, item in audio.items:
        if item.frame is not None:
            first.setdefault(item.text, at - start)
    return first


@pytest.mark.looptime
async def test_what_a_tool_says_is_heard_while_it_runs_and_kept_in_the_history() -> None:
    fake = FakeLLM([
        _calling("look_up_order", '{"order": "42"}', text="Sure."),
        "Your order ships tomorrow.",
    ], ttft=0.1, token_gap=0.0)
    llm = LLM(fake, tools=[look_up_order])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="where is order 42?")
    g, text, audio, fake_tts = _graph(llm, ToolRouter([look_up_order]), [(0, turn)])
    start = asyncio.get_running_loop().time()
    await fk.GraphRunner(g).run()

    # Each stretch is its own request to the synthesiser, short as it is: none waited for
    # the tool's two seconds.
    assert fake_tts.texts == ["Sure.", "One moment.", "Your order ships tomorrow."]
    heard = _first_audio(audio, start)
    assert heard["Sure."] == pytest.approx(0.1 + 0.05, abs=0.02)
    assert heard["One moment."] < 1.0
    assert heard["Your order ships tomorrow."] == pytest.approx(0.1 + 2.0 + 0.1 + 0.05, abs=0.05)
    chunks = collected(text)
    assert "".join(c.text for c in chunks) == "Sure. One moment. Your order ships tomorrow."
    # The model's next request knows what was said, on the message that called the tool
    # (a message of its own would split the call from its result).
    second = [(m.role, m.content) for m in fake.requests[1].history if m.role != "system"]
    assert second == [
        ("user", "where is order 42?"),
        ("assistant", "Sure. One moment."),
        ("tool", "order 42 ships tomorrow"),
    ]
    [calling] = [m for m in fake.requests[1].history if m.role == "assistant"]
    assert [c.name for c in calling.tool_calls] == ["look_up_order"]


@fk.function_tool
async def slow_search(ctx: fk.RunContext, query: str) -> str:
    """Search, slowly, and tell the user about it late.

    Args:
        query: What to look for.
    """
    await asyncio.sleep(1.0)
    await ctx.say("Still searching.")
    return f"nothing about {query}"


@pytest.mark.looptime
async def test_words_said_after_the_round_gave_up_on_the_call_are_dropped() -> None:
    fake = FakeLLM([_calling("slow_search", '{"query": "cats"}'), "I found nothing."],
                   ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[slow_search], tool_result_timeout=0.5)
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="search cats")
    # The turns stay open past the late words, so that the LLM node is there to drop them.
    g, text, _, fake_tts = _graph(llm, ToolRouter([slow_search]), [(0, turn)], end_at=3.0)
    await fk.GraphRunner(g).run()
    assert fake_tts.texts == ["I found nothing."]
    assert "Still searching" not in "".join(c.text for c in collected(text))
    assert all("Still searching" not in m.content for m in llm.history.messages)


@pytest.mark.looptime
async def test_words_said_after_a_newer_turn_cut_the_reply_are_dropped() -> None:
    fake = FakeLLM([_calling("slow_search", '{"query": "cats"}'), "Hello again."],
                   ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[slow_search])
    first = fk.UserTurn(turn_id=fk.new_turn_id(), text="search cats")
    second = fk.UserTurn(turn_id=fk.new_turn_id(), text="never mind, hello")
    g, text, _, fake_tts = _graph(
        llm, ToolRouter([slow_search]), [(0, first), (0.5, second)], end_at=3.0
    )
    await fk.GraphRunner(g).run()
    assert fake_tts.texts == ["Hello again."]
    assert "Still searching" not in "".join(c.text for c in collected(text))


@fk.function_tool
async def says_nothing(ctx: fk.RunContext) -> str:
    """Say a blank line."""
    await ctx.say("   ")
    return "done"


@fk.function_tool
async def pays(ctx: fk.RunContext) -> str:
    """Take the payment: the reply may not be cut from here on."""
    await asyncio.sleep(0.5)  # the words before the call are spoken meanwhile
    ctx.disallow_interruptions()
    await asyncio.sleep(1.0)
    return "paid"


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("tool", "linked", "expected"),
    [
        (look_up_order, False, "link the ToolRouter's speech output to the LLM node's tool_speech"),
        (says_nothing, True, "called ctx.say() with nothing to say"),
        (pays, False, "speech output unlinked, so the request cannot reach the reply; link "
                      "router.speech >> llm.tool_speech"),
    ],
)
async def test_a_say_that_cannot_be_spoken_fails_the_call_and_the_log_names_the_fix(
    tool: Any, linked: bool, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="flowkit.tools")
    fake = FakeLLM([_calling(tool.name, '{"order": "7"}' if tool is look_up_order else "{}"),
                    "Sorry."], ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[tool])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="go")
    g, _, _, fake_tts = _graph(llm, ToolRouter([tool]), [(0, turn)], speech=linked)
    await fk.GraphRunner(g).run()
    # The model hears that the call failed (not why: exception texts stay in the logs) and
    # the log says what to change; the reply goes on.
    [result] = [m for m in fake.requests[1].history if m.role == "tool"]
    assert result.content.startswith(f"Tool {tool.name!r} failed")
    [failure] = [r for r in caplog.records if r.name == "flowkit.tools" and r.exc_info]
    assert failure.exc_info is not None and expected in str(failure.exc_info[1])
    assert fake_tts.texts == ["Sorry."]


@pytest.mark.looptime
async def test_the_harness_shows_what_the_tool_said_between_the_call_and_its_output() -> None:
    fake = FakeLLM([_calling("look_up_order", '{"order": "42"}'), "It ships tomorrow."],
                   ttft=0.0, token_gap=0.0)
    g = fk.Graph("agent")
    llm = g.add(LLM(fake, tools=[look_up_order]), name="llm")
    g.add(Script(hold=True), name="user") >> llm  # a live source: the graph stays open
    router = g.add(ToolRouter([look_up_order]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    llm >> g.add(Collect(), name="text")
    async with Harness(g) as agent:
        result = await agent.run("where is order 42?")
    result.expect.next_event().is_function_call(name="look_up_order", arguments={"order": "42"})
    result.expect.next_event().is_message(role="assistant", contains="One moment.")
    result.expect.next_event().is_function_call_output(output="order 42 ships tomorrow")
    result.expect.next_event().is_message(role="assistant", contains="ships tomorrow")
    result.expect.no_more_events()


@fk.function_tool
async def quick_note(ctx: fk.RunContext, note: str) -> str:
    """Save a note at once, saying so.

    Args:
        note: The note.
    """
    await ctx.say("Noting that down.")
    return "saved"


@pytest.mark.looptime
async def test_words_of_a_tool_that_returns_at_once_are_still_spoken_before_the_answer() -> None:
    # The words and the result leave the router one after the other; the words must not
    # lose the race to a round that the result has just completed.
    fake = FakeLLM([_calling("quick_note", '{"note": "milk"}'), "Saved your note."],
                   ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[quick_note])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="note milk")
    g, text, _, fake_tts = _graph(llm, ToolRouter([quick_note]), [(0, turn)])
    await fk.GraphRunner(g).run()
    assert fake_tts.texts == ["Noting that down.", "Saved your note."]
    assert "".join(c.text for c in collected(text)).strip() == "Noting that down. Saved your note."
    assert [(m.role, m.content) for m in fake.requests[1].history] == [
        ("user", "note milk"), ("assistant", "Noting that down."), ("tool", "saved"),
    ]


@pytest.mark.looptime
async def test_a_reply_guard_passes_on_the_tool_words_before_the_reply_ends() -> None:
    # The flushes are the guard's checkpoints: "Sure." and the tool's "One moment." pass
    # the check and go on while the tool runs, not after the reply's last token.
    from flowkit.nodes.text import ReplyGuard

    fake = FakeLLM([
        _calling("look_up_order", '{"order": "42"}', text="Sure."),
        "Your order ships tomorrow.",
    ], ttft=0.1, token_gap=0.0)
    g = fk.Graph("guarded-tool-speech")
    llm = g.add(LLM(fake, tools=[look_up_order]), name="llm")
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="where is order 42?")
    g.add(Script((0, turn)), name="turns") >> llm
    router = g.add(ToolRouter([look_up_order]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    guard = g.add(ReplyGuard(banned_words=["password"]), name="guard")
    text, audio = g.add(TimedCollect(), name="text"), g.add(TimedCollect(), name="audio")
    fake_tts = FakeTTS(seconds_per_char=0.01, ttfa=0.05)
    llm >> guard >> text
    guard >> g.add(TTS(fake_tts), name="tts") >> audio
    start = asyncio.get_running_loop().time()
    await fk.GraphRunner(g).run()

    [(final_at, _)] = [(at, c) for at, c in text.items if c.final]
    said_at = next(at for at, c in text.items if c.text.startswith("One moment."))
    assert said_at < 1.0  # the tool sleeps 2 s after its words, the reply ends after that
    assert final_at == pytest.approx(0.1 + 2.0 + 0.1, abs=0.05)
    assert "".join(c.text for _, c in text.items) == "Sure. One moment. Your order ships tomorrow."
    assert fake_tts.texts == ["Sure.", "One moment.", "Your order ships tomorrow."]
    heard = _first_audio(audio, start)
    assert heard["Sure."] < heard["One moment."] < 1.0


@pytest.mark.looptime
async def test_a_tool_protects_the_rest_of_its_reply_down_to_the_audio() -> None:
    fake = FakeLLM([_calling("pays", "{}", "Let me take that payment."), "It is done."],
                   ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[pays])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="pay")
    g, text, audio, fake_tts = _graph(llm, ToolRouter([pays]), [(0, turn)])
    await fk.GraphRunner(g).run()
    chunks: list[fk.TextChunk] = collected(text)
    # The text before the call may be cut; from the tool's request on, nothing may.
    sent = next(i for i, c in enumerate(chunks) if not c.allow_interruptions)
    assert chunks[sent].text == "" and not chunks[sent].final  # the protection, at once
    assert all(c.allow_interruptions for c in chunks[:sent])
    assert "".join(c.text for c in chunks[:sent]).strip() == "Let me take that payment."
    assert not any(c.allow_interruptions for c in chunks[sent:])
    assert "".join(c.text for c in chunks[sent:]) == "It is done."
    assert chunks[-1].final
    # At the TTS node's output: the audio before, a marker without audio, then only
    # protected audio.
    items = [item for _, item in audio.items]
    marker = next(i for i, item in enumerate(items) if item.frame is None and not item.final)
    assert not items[marker].allow_interruptions
    before = items[:marker]
    assert before and all(item.allow_interruptions for item in before)
    assert all(not item.allow_interruptions for item in items[marker + 1:])
    assert any(item.text == "It is done." for item in items[marker + 1:])
    assert fake_tts.texts == ["Let me take that payment.", "It is done."]


@pytest.mark.looptime
async def test_a_tool_protection_passes_a_reply_guard_at_once() -> None:
    fake = FakeLLM([_calling("pays", "{}", "Let me take that payment."), "It is done."],
                   ttft=0.0, token_gap=0.0)
    llm = LLM(fake, tools=[pays])
    turn = fk.UserTurn(turn_id=fk.new_turn_id(), text="pay")
    g = fk.Graph("guarded-payment")
    g.add(Script((0, turn)), name="turns") >> g.add(llm, name="llm")
    router = g.add(ToolRouter([pays]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    router.speech >> llm.tool_speech
    audio = g.add(TimedCollect(), name="audio")
    guard = g.add(ReplyGuard(banned_words=["refund"]), name="guard")
    tts = g.add(TTS(FakeTTS(seconds_per_char=0.01, ttfa=0.05)), name="tts")
    llm >> guard >> tts >> audio
    start = asyncio.get_running_loop().time()
    await fk.GraphRunner(g).run()
    # The marker reaches the speaker when the tool asks (0.5 s in), not when it returns.
    [marker_at] = [at - start for at, item in audio.items
                   if item.frame is None and not item.final]
    assert marker_at == pytest.approx(0.5, abs=0.05)
