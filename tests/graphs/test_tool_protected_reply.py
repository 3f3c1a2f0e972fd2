"""A tool that protects its reply (``ctx.disallow_interruptions()``) in a whole voice graph.

The user talks over the reply while the tool runs: without the protection that is a
barge-in that cuts the reply; with it the reply plays to its end, the tool finishes, and
what the user said is answered afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from support import speech

import flowkit as fk
from flowkit.nodes import audio, interrupt, llm, room, stt, tools, tts, turn, vad
from flowkit.nodes.llm_tool_rounds import LATE_RESULT_NOTE
from flowkit.providers.chat import ChatMessage
from flowkit.providers.llm import ToolCallChunk
from flowkit.testing import FakeLLM, FakeReply, FakeTTS
from flowkit.testing.demo import DescribingSTT
from flowkit.testing.memory_io import MemoryIO
from flowkit.vad import EnergyVAD

SAID = "One moment while I process the payment."
DONE = "Your payment went through."


def _graph(protect: bool, finished: list[str]) -> tuple[fk.Graph, llm.LLM]:
    @fk.function_tool
    async def charge_card(ctx: fk.RunContext) -> str:
        """Charge the card on file."""
        await ctx.say(SAID)
        # The charge starts a second in, once the reply is playing: the protection reaches
        # a speaker that is already speaking.
        await asyncio.sleep(1.0)
        if protect:
            ctx.disallow_interruptions()
        await asyncio.sleep(3.0)  # the payment provider is slow
        finished.append("charged")
        return "paid"

    def reply(history: Sequence[ChatMessage]) -> str | FakeReply:
        last = history[-1]
        if last.role == "tool":
            return DONE
        if sum(m.role == "user" for m in history) == 1:
            call = ToolCallChunk("call_1", "charge_card", "{}")
            return FakeReply(text="Let me charge your card.", tool_calls=(call,))
        return f"You said: {last.content}"

    model = FakeLLM(reply, ttft=0.2, token_gap=0.02)
    g = fk.Graph("payments")
    mic = g.add(room.RoomSource(sample_rate=48_000), name="mic")
    ears = g.add(vad.VAD(EnergyVAD()), name="vad")
    asr = g.add(stt.STT(DescribingSTT()), name="stt")
    turns = g.add(turn.TurnDetector(mode="vad"), name="turns")
    brain = g.add(llm.LLM(model, tools=[charge_card]), name="llm")
    router = g.add(tools.ToolRouter([charge_card]), name="tools")
    voice = g.add(tts.TTS(FakeTTS(sample_rate=24_000)), name="tts")
    speaker = g.add(room.RoomSink(), name="speaker")
    barge = g.add(interrupt.Interruptions(), name="interruptions")
    mic >> audio.Resample(16_000, channels=1) >> ears >> asr >> turns >> brain >> voice >> speaker
    brain.tool_calls >> router >> brain.tool_results
    router.speech >> brain.tool_speech
    ears.events >> [asr.speech, turns.vad, barge.vad]
    asr >> barge.transcripts
    barge >> [speaker.interrupt, voice.interrupt, brain.interrupt]
    speaker >> [brain.playout, barge.playout]
    return g, brain


async def _talk_over_the_tool(protect: bool) -> tuple[MemoryIO, llm.LLM, list[str]]:
    # A question, then 1.5 s of speech at 4.0 s, while the tool's words play and it runs.
    io = MemoryIO(
        speech(("silence", 0.5), ("voice", 1.0), ("silence", 2.5), ("voice", 1.5),
               ("silence", 14.0)),
        paced=True,
    )
    finished: list[str] = []
    graph, brain = _graph(protect, finished)
    job = fk.JobContext(io=io)
    runner = fk.GraphRunner(graph, job=job)
    await runner.run()
    assert runner.node_errors == []
    return io, brain, finished


@pytest.mark.looptime
async def test_speech_over_a_protected_tool_reply_is_answered_after_it() -> None:
    io, brain, finished = await _talk_over_the_tool(protect=True)
    assert io.cleared == [], "the protected reply was interrupted"
    assert finished == ["charged"]
    messages = brain.history.messages
    assistant = [m for m in messages if m.role == "assistant"]
    assert not any(m.interrupted for m in assistant)
    # The reply whole: its text and the tool's words on the calling message, the result,
    # then the rest; the user's words, held meanwhile, answered after it.
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user",
                                          "assistant"]
    assert assistant[0].content == f"Let me charge your card. {SAID}"
    assert assistant[1].content == DONE
    assert assistant[2].content.startswith("You said: [")
    heard = [t.text for t in io.transcripts if t.speaker == "agent" and t.final]
    assert heard[0] == f"Let me charge your card. {SAID} {DONE}"
    # Two stretches of audio: the whole reply (over the user's speech at 4.0-5.5 s and
    # the tool's 4 s), then the answer, which started only once the reply had ended.
    times = [t for t, _ in io.played]
    gaps = [i for i in range(1, len(times)) if times[i] - times[i - 1] > 0.5]
    reply_end = times[gaps[-1] - 1] + 0.02
    assert reply_end > 6.0
    assert times[gaps[-1]] >= reply_end


@pytest.mark.looptime
async def test_the_same_speech_cuts_an_unprotected_tool_reply() -> None:
    # The control: the same conversation without ctx.disallow_interruptions() is a barge-in.
    io, brain, _ = await _talk_over_the_tool(protect=False)
    assert io.cleared, "the user's speech never interrupted the reply"
    heard = [t.text for t in io.transcripts if t.speaker == "agent" and t.final]
    assert f"Let me charge your card. {SAID}".startswith(heard[0])
    assert len(heard[0]) < len(f"Let me charge your card. {SAID}")  # cut in the tool's words
    # The calling message keeps what was heard of it (its text and the tool's words), cut.
    messages = brain.history.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "user", "assistant"]
    assert (messages[1].content, messages[1].interrupted) == (heard[0], True)
    assert messages[2].tool_call_id == messages[1].tool_calls[0].call_id
    # The user's words were answered while the tool still ran: the call had an error result
    # right after it, before their message, as a chat API requires.
    model = brain.params.provider  # type: ignore[attr-defined]
    answer = model.requests[-1].history
    assert answer[-1].content == messages[3].content
    assert answer[-2].content.startswith("no result: the user cut the reply off")
    # The tool finished later: its result took that answer's place; the rest of the reply
    # (DONE) was never asked for.
    assert messages[2].content == f"paid\n({LATE_RESULT_NOTE})"
    assert DONE not in [m.content for m in messages]
