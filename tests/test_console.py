import asyncio
import wave
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.console import (
    AGENT_PREFIX,
    ConsoleAudioOutput,
    ConsoleIO,
    Conversation,
    TranscriptPrinter,
    converse,
)
from flowkit.loader import load_graph
from flowkit.ports import AudioFormat

CHAT = Path(__file__).parent / "fixtures" / "graphs" / "console_chat.py"


def agent(text: str, turn_id: int = 1, final: bool = False) -> fk.Transcript:
    return fk.Transcript(turn_id=turn_id, text=text, final=final, speaker="agent")


def printed(transcripts: Iterable[fk.Transcript]) -> str:
    out: list[str] = []
    printer = TranscriptPrinter(out.append)
    for transcript in transcripts:
        printer.show(transcript)
    return "".join(out)


def test_the_agents_words_are_shown_as_they_grow_and_the_final_ends_the_line() -> None:
    shown = printed([
        agent("Hello"), agent("Hello there,"), agent("Hello there, how are"),
        agent("Hello there, how are you?", final=True),
    ])
    assert shown == f"{AGENT_PREFIX}Hello there, how are you?\n"


def test_the_users_transcripts_are_not_shown() -> None:
    user = fk.Transcript(turn_id=1, text="what I typed", final=True, speaker="user")
    assert printed([user, agent("Sure.", final=True)]) == f"{AGENT_PREFIX}Sure.\n"


def test_a_reply_cut_short_keeps_the_words_shown_and_the_next_reply_starts_a_line() -> None:
    shown = printed([
        agent("One two three"),
        agent("One two", final=True),  # cut back to the words heard
        agent("Four", turn_id=2), agent("Four five.", turn_id=2, final=True),
    ])
    assert shown == f"{AGENT_PREFIX}One two three\n{AGENT_PREFIX}Four five.\n"


def test_a_reply_that_starts_before_the_last_one_ended_starts_a_new_line() -> None:
    shown = printed([agent("Old reply"), agent("New", turn_id=2, final=True)])
    assert shown == f"{AGENT_PREFIX}Old reply\n{AGENT_PREFIX}New\n"


def tone(seconds: float, rate: int = 16_000) -> rtc.AudioFrame:
    samples = (np.ones(round(seconds * rate)) * 1000).astype(np.int16)
    return frame_from_samples(samples, rate)


async def test_the_voice_plays_in_real_time_and_is_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    output = ConsoleAudioOutput(AudioFormat(16_000, 1), path)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await output.write(tone(0.1))
    # write returns when its frame is due: the third starts 0.2 s after the first.
    assert loop.time() - start >= 0.2
    await output.aclose()
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16_000, 1, 4800)
    assert output.written == pytest.approx(0.3)


async def test_a_cleared_output_plays_the_next_frame_at_once() -> None:
    output = ConsoleAudioOutput(AudioFormat(16_000, 1))
    loop = asyncio.get_running_loop()
    await output.write(tone(5.0))  # due now: returns at once, plays for 5 s
    output.clear()  # barge-in: the rest of it is not played
    start = loop.time()
    await output.write(tone(0.1))
    await output.write(tone(0.1))
    elapsed = loop.time() - start
    # After a clear the next frame is due now, not after the 5 s written before.
    assert 0.1 <= elapsed < 4.0


async def test_a_frame_in_another_format_is_refused_naming_both() -> None:
    output = ConsoleAudioOutput(AudioFormat(24_000, 1))
    with pytest.raises(ValueError, match=r"24 kHz mono.*16 kHz mono.*resample"):
        await output.write(tone(0.02))


def test_a_second_voice_format_is_refused_naming_both() -> None:
    io = ConsoleIO(lambda t: None)
    first = io.audio_output(24_000, 1)
    assert io.audio_output(24_000, 1) is first  # the same output, asked again
    with pytest.raises(ValueError, match=r"24 kHz mono, not 16 kHz mono.*resample"):
        io.audio_output(16_000, 1)


async def test_typed_lines_come_with_the_users_identity_until_the_typing_ends() -> None:
    io = ConsoleIO(lambda t: None, identity="ada")
    io.type_line("hello")
    io.type_line("how are you")
    io.end_typing()
    got = [pair async for pair in io.text_input()]
    assert got == [("ada", "hello"), ("ada", "how are you")]
    assert io.typing_done.is_set()
    assert [pair async for pair in io.text_input()] == []  # ended for good


async def test_a_reader_cancelled_while_it_waits_loses_no_line() -> None:
    io = ConsoleIO(lambda t: None)
    reader = io.text_input()
    waiting = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0.01)
    waiting.cancel()  # a ChatInput restarted by its error policy
    with pytest.raises(asyncio.CancelledError):
        await waiting
    io.type_line("still here")
    io.end_typing()
    assert [text async for _, text in io.text_input()] == ["still here"]


async def lines_of(*lines: str, then_wait: bool = False) -> AsyncIterator[str]:
    for line in lines:
        yield line
    if then_wait:  # the user stays at the keyboard without typing
        await asyncio.Event().wait()


async def chat(
    lines: AsyncIterator[str], tmp_path: Path, *, turn_by_turn: bool = True,
    reply_timeout: float = 10.0,
) -> tuple[Conversation, str, ConsoleIO]:
    out: list[str] = []
    printer = TranscriptPrinter(out.append)
    io = ConsoleIO(printer.show, output=tmp_path / "voice.wav")
    job = fk.JobContext.local()
    job.io = io
    graph = load_graph(CHAT, job)
    result = await asyncio.wait_for(
        converse(graph, job, io, lines, turn_by_turn=turn_by_turn, reply_timeout=reply_timeout),
        timeout=60,
    )
    return result, "".join(out), io


async def test_a_scripted_conversation_is_answered_turn_by_turn(tmp_path: Path) -> None:
    result, shown, io = await chat(lines_of("hello", "", "how are you"), tmp_path)
    assert shown == f"{AGENT_PREFIX}you said hello.\n{AGENT_PREFIX}you said how are you.\n"
    assert result.unanswered == 0
    (llm,) = [p for p in result.usage.providers if p.node == "llm"]
    assert llm.requests == 2  # the blank line is no turn
    assert io.output is not None and io.output.closed
    assert io.output.written == pytest.approx(0.01 * (15 + 21), abs=0.05)


async def test_a_new_line_cuts_off_the_reply_before_it(tmp_path: Path) -> None:
    # Typed at once, as fast as a paste: the second message flushes the first reply.
    result, shown, _ = await chat(lines_of("first", "second"), tmp_path, turn_by_turn=False)
    assert shown.endswith(f"{AGENT_PREFIX}you said second.\n")
    assert "you said first." not in shown
    assert result.unanswered == 0


async def test_a_reply_that_never_comes_is_given_up_on(tmp_path: Path) -> None:
    result, shown, _ = await chat(
        lines_of("silence", "hello"), tmp_path, reply_timeout=0.5
    )
    assert result.unanswered == 1
    assert shown == f"{AGENT_PREFIX}you said hello.\n"  # the conversation went on


async def test_a_last_line_never_answered_is_counted_once(tmp_path: Path) -> None:
    for turn_by_turn in (True, False):
        result, shown, _ = await chat(
            lines_of("hello", "silence"), tmp_path, turn_by_turn=turn_by_turn,
            reply_timeout=0.5,
        )
        assert result.unanswered == 1, turn_by_turn
        # Turn by turn "hello" is answered first; pasted, "silence" cuts its reply off.
        assert (f"{AGENT_PREFIX}you said hello." in shown) is turn_by_turn


async def test_the_last_reply_is_waited_for_once_the_typing_ends(tmp_path: Path) -> None:
    # Not turn by turn: the typing ends at once, the reply comes after.
    result, shown, _ = await chat(lines_of("hello"), tmp_path, turn_by_turn=False)
    assert shown == f"{AGENT_PREFIX}you said hello.\n"
    assert result.unanswered == 0


async def test_the_conversation_ends_when_the_agent_hangs_up(tmp_path: Path) -> None:
    # The user is still at the keyboard; the job is asked to end after the goodbye.
    result, shown, _ = await chat(lines_of("bye", then_wait=True), tmp_path)
    assert shown == f"{AGENT_PREFIX}you said bye.\n"
    assert result.unanswered == 0


async def test_a_wait_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    io = ConsoleIO(lambda t: None)
    job = fk.JobContext.local()
    job.io = io
    with pytest.raises(ValueError, match="positive"):
        await converse(load_graph(CHAT, job), job, io, lines_of(), reply_timeout=0)
