"""The examples: weather, restaurant (handoff and task), timed transcript, background, outbound,
warm transfer, async tool."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import flowkit as fk
from flowkit.cli import main
from flowkit.loader import load_graph
from flowkit.testing import FakeTTS, Harness
from flowkit.testing.memory_io import MemoryIO
from flowkit.tools.end_call import DEFAULT_END_INSTRUCTIONS

EXAMPLES = Path(__file__).parents[2] / "examples"


def live_job(**extra: object) -> fk.JobContext:
    """A job whose room stays open (no audio) while the harness sends text turns."""
    return fk.JobContext(io=MemoryIO(live=True), extra=dict(extra))


@pytest.mark.parametrize(
    "name",
    [
        "weather_agent", "restaurant_agent", "timed_transcript", "background_audio",
        "outbound_call", "warm_transfer", "avatar_agent", "async_tool_agent",
    ],
)
def test_example_is_valid_and_drawn(name: str) -> None:
    assert load_graph(EXAMPLES / f"{name}.py").problems() == []
    result = CliRunner().invoke(main, ["viz", str(EXAMPLES / f"{name}.py"), "-f", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart")


# --------------------------------------------------------------------------- weather


@pytest.mark.looptime
async def test_weather_agent_calls_the_tool_and_speaks_its_answer() -> None:
    voice = FakeTTS(sample_rate=24_000)
    job = live_job(tts=voice)
    async with Harness(load_graph(EXAMPLES / "weather_agent.py", job), job=job) as agent:
        result = await agent.run("What's the weather in Paris?")
        unknown = await agent.run("And the weather in Atlantis?")
        chat = await agent.run("Hello")
    expect = result.expect
    expect.next_event().is_function_call(name="get_weather", arguments={"city": "Paris"})
    expect.next_event().is_function_call_output(output="sunny and 24 degrees in Paris")
    expect.next_event().is_message(content="Today it is sunny and 24 degrees in Paris.")
    expect.no_more_events()
    assert voice.texts[0] == "Today it is sunny and 24 degrees in Paris."  # spoken

    expect = unknown.expect
    expect.next_event().is_function_call(arguments={"city": "Atlantis"})
    expect.next_event().is_function_call_output(is_error=True)
    expect.next_event().is_message(contains="no forecast for Atlantis")

    expect = chat.expect
    expect.next_event().is_message(contains="ask me about the weather")
    expect.no_more_events()


@pytest.mark.looptime
async def test_weather_agent_hangs_up_after_saying_goodbye() -> None:
    voice = FakeTTS(sample_rate=24_000)
    job = live_job(tts=voice)
    async with Harness(load_graph(EXAMPLES / "weather_agent.py", job), job=job) as agent:
        result = await agent.run("That's all, thanks. Bye!")
        reason = await job.wait_for_shutdown()
    expect = result.expect
    expect.next_event().is_function_call(name="end_call")
    expect.next_event().is_function_call_output(output=DEFAULT_END_INSTRUCTIONS)
    expect.next_event().is_message(content="Goodbye, and enjoy the weather!")
    assert voice.texts == ["Goodbye, and enjoy the weather!"]
    assert reason == "the agent ended the call"


# --------------------------------------------------------------------------- restaurant


@pytest.mark.looptime
async def test_restaurant_handoff_switches_agents_and_keeps_the_history() -> None:
    from flowkit.testing import FakeLLM

    job = live_job()
    graph = load_graph(EXAMPLES / "restaurant_agent.py", job)
    model = graph.nodes["llm"].params.provider  # type: ignore[attr-defined]
    assert isinstance(model, FakeLLM)
    async with Harness(graph, job=job) as agent:
        hello = await agent.run("Hi there")
        transfer = await agent.run("I'd like to book a table")
        asked = await agent.run("At 7 pm for 4 people please")
        partial = await agent.run("It's 5 5")
        booked = await agent.run("Sorry, it's 555 0100 200")
        back = await agent.run("Can I ask about the menu?")

    hello.expect.next_event().is_message(contains="Welcome to Flowkit Bistro")

    expect = transfer.expect
    expect.next_event().is_function_call(name="to_reservations", arguments={})
    expect.next_event().is_function_call_output()
    handoff = expect.next_event().is_agent_handoff()
    assert handoff.agent.name == "reservations"
    expect.next_event().is_message(contains="how many people")
    expect.no_more_events()

    # the reservation agent's requests: its instructions and tools, the greeter's history
    request = next(r for r in model.requests if "At 7 pm" in r.history[-1].content)
    assert request.history[0].content.startswith("You take table reservations")
    assert {t.name for t in request.tools} == {"book_table", "to_greeter"}
    said = [m.content for m in request.history if m.role == "user"]
    assert said == ["Hi there", "I'd like to book a table", "At 7 pm for 4 people please"]

    # book_table runs the GetPhoneNumber task, which asks until it has a whole number.
    expect = asked.expect
    expect.next_event().is_function_call(
        name="book_table", arguments={"time": "7 pm", "party_size": 4})
    expect.next_event().is_function_call_output(output=(
        "GetPhoneNumber has started: follow its instructions until it is complete."))
    task = expect.next_event().is_agent_handoff().agent
    assert type(task).__name__ == "GetPhoneNumber"
    expect.next_event().is_message(contains="What phone number")
    expect.no_more_events()

    expect = partial.expect
    expect.next_event().is_function_call(name="phone_number_given", arguments={"phone": "5 5"})
    expect.next_event().is_function_call_output(is_error=True)
    expect.next_event().is_message(contains="the whole number")
    request = next(r for r in model.requests if r.history[-1].content == "It's 5 5")
    assert request.history[0].content == task.instructions
    assert {t.name for t in request.tools} == {"phone_number_given"}

    expect = booked.expect
    expect.next_event().is_function_call(
        name="phone_number_given", arguments={"phone": "555 0100 200"})
    expect.next_event().is_message(content="One moment while I book that.")  # ctx.say
    expect.next_event().is_function_call_output(
        output="booked a table for 4 at 7 pm; the confirmation goes to 555 0100 200")
    ended = expect.next_event().is_agent_handoff()
    assert ended.agent is None and ended.ended is task  # back to the reservation agent
    expect.next_event().is_message(contains="See you then")
    booking = job.extra["booking"]
    assert (booking.time, booking.party_size, booking.confirmed) == ("7 pm", 4, True)
    assert booking.phone == "555 0100 200"
    request = next(r for r in model.requests if r.history[-1].content.startswith("booked"))
    assert request.history[0].content.startswith("You take table reservations")

    expect = back.expect
    expect.next_event().is_function_call(name="to_greeter")
    expect.next_event().is_function_call_output()
    assert expect.next_event().is_agent_handoff().agent.name == "greeter"
    expect.next_event().is_message(contains="Welcome back")
    assert {t.name for t in model.requests[-1].tools} == {"to_reservations"}


# --------------------------------------------------------------------------- timed transcript


@pytest.mark.looptime
async def test_timed_transcript_prints_each_sentence_as_it_starts_playing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    voice = FakeTTS(sample_rate=24_000, ttfa=0.3, min_sentence_length=5)
    io = MemoryIO(live=True, paced=True)
    job = fk.JobContext(io=io, extra={"tts": voice})
    graph = load_graph(EXAMPLES / "timed_transcript.py", job)
    loop = asyncio.get_running_loop()
    async with fk.GraphRunner(graph, job=job):
        start = loop.time()
        await asyncio.sleep(15)  # the greeting is spoken from code: no user speech needed
    lines = graph.nodes["printer"].lines  # type: ignore[attr-defined]
    sentences = voice.texts
    assert len(sentences) == 2
    assert [(who, text) for _, who, text in lines] == [("agent", s) for s in sentences]
    # each line is printed when its sentence starts playing, not when the LLM wrote it
    first_played = io.played[0][0] - start
    assert lines[0][0] == pytest.approx(first_played, abs=0.02)
    assert lines[1][0] - lines[0][0] == pytest.approx(
        voice.audio_duration(sentences[0]), abs=0.03)
    assert lines[1][0] > 2.0  # long after the LLM finished writing (about 0.5 s in)
    out = capsys.readouterr().out
    assert f"[{lines[1][0]:7.2f} s] agent: {sentences[1]}" in out


# --------------------------------------------------------------------------- background audio


@pytest.mark.looptime
async def test_background_audio_hums_throughout_and_types_while_thinking() -> None:
    import asyncio

    import numpy as np

    from flowkit.audio import samples
    from flowkit.nodes.background import load_sound
    from flowkit.ports import AudioFormat

    io = MemoryIO(live=True, paced=True)
    job = fk.JobContext(io=io)
    graph = load_graph(EXAMPLES / "background_audio.py", job)
    loop = asyncio.get_running_loop()
    async with fk.GraphRunner(graph, job=job):
        start = loop.time()
        await asyncio.sleep(4.0)  # the greeting: 1.5 s of thinking, then spoken
    played = io.tracks["background_audio"]
    times = np.array([t - start for t, _ in played])
    assert times[0] == pytest.approx(0.0, abs=0.02) and np.diff(times).max() < 0.021  # no gap
    audio = np.concatenate([samples(f)[:, 0] for _, f in played]).astype(np.int32)
    # What the room tone alone would be; the rest of the track is the typing.
    tone = load_sound(EXAMPLES / "audio" / "room_tone.wav", AudioFormat(48_000, 1))[:, 0]
    hum = np.rint(np.resize(tone, len(audio)) * np.float32(0.6)).astype(np.int32)
    typing = np.abs(audio - hum).reshape(-1, 960).max(axis=1)  # per 20 ms frame
    speaking = (io.played[0][0] - start) / 0.02  # the frame the greeting starts playing in
    assert speaking > 1.5 / 0.02  # the stand-in model takes 1.5 s to its first word
    assert typing[: int(speaking) - 2].max() > 1000  # typing while thinking
    # The room tone alone once speaking: the frame queued ahead, the fade, then nothing.
    assert typing[int(speaking) + 3 :].max() <= 1


# --------------------------------------------------------------------------- outbound call


def _greeting(speech: float, silence: float) -> list[Any]:
    """48 kHz frames: ``speech`` s of loud noise (speech to the energy VAD), then silence."""
    import numpy as np

    from flowkit.audio import frame_from_samples

    rate, step = 48_000, 960
    noise = np.random.default_rng(7).normal(0, 4000, int(rate * speech))
    pcm = np.concatenate([noise, np.zeros(int(rate * silence))]).astype(np.int16)
    return [frame_from_samples(pcm[i : i + step].copy(), rate) for i in range(0, pcm.size, step)]


async def _call(greeting: str, speech: float) -> tuple[fk.JobContext, FakeTTS, Any]:
    import asyncio

    from flowkit.testing import FakeSTT

    voice = FakeTTS(sample_rate=24_000)
    io = MemoryIO(_greeting(speech, 12.0), paced=True)
    job = fk.JobContext(io=io, extra={"stt": FakeSTT([greeting]), "tts": voice})
    graph = load_graph(EXAMPLES / "outbound_call.py", job)
    async with fk.GraphRunner(graph, job=job):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.wait_for_shutdown(), 12.0)
    return job, voice, graph.nodes["llm"].params.provider  # type: ignore[attr-defined]


@pytest.mark.looptime
async def test_outbound_call_leaves_a_voicemail_then_hangs_up() -> None:
    greeting = "Hi, you've reached Dana. Leave a message after the tone."
    job, voice, model = await _call(greeting, speech=4.0)
    assert job.shutdown_reason == "voicemail left"
    # The agent spoke the message and nothing else: the greeting's turn was not answered.
    assert " ".join(voice.texts) == (
        "Hello, this is the clinic calling about your appointment tomorrow at 10. "
        "Please call us back."
    )
    asked = [r.history[-1].content for r in model.requests]
    assert asked[0] == greeting  # the classification
    assert greeting not in asked[1:]


@pytest.mark.looptime
async def test_outbound_call_answers_a_person_and_stays_on_the_line() -> None:
    job, voice, _ = await _call("Hello?", speech=0.6)
    # One answer to "Hello?", and no reminder from IVRWatch in the silence after it: a
    # person answered, so the watch never started.
    assert job.shutdown_reason is None
    assert voice.texts == ["Hi, this is the clinic calling about your appointment tomorrow at 10."]


# --------------------------------------------------------------------------- warm transfer


@pytest.mark.looptime
async def test_warm_transfer_outside_a_room_tells_the_caller_it_could_not_transfer() -> None:
    # Offline there is no call to transfer: the tool says so, and the model tells the caller.
    job = live_job(tts=FakeTTS(sample_rate=24_000))
    graph = load_graph(EXAMPLES / "warm_transfer.py", job)
    async with Harness(graph, job=job, turn_input="llm.turns") as agent:
        result = await agent.run("Can I talk to a person?")
    expect = result.expect
    expect.next_event().is_message(contains="please hold")
    expect.next_event().is_function_call(
        name="transfer_to_human", arguments={"summary": "A caller wants to change a booking."})
    failed = expect.next_event().is_function_call_output(is_error=True)
    assert "no phone call to transfer here" in failed.output
    expect.next_event().is_message(contains="could not reach anyone")
    expect.no_more_events()


# --------------------------------------------------------------------------- async tool


@pytest.mark.looptime
async def test_async_tool_agent_books_in_the_background_while_the_caller_talks() -> None:
    voice = FakeTTS(sample_rate=24_000)
    job = live_job(tts=voice, search_seconds=4.0, booking_seconds=6.0)
    graph = load_graph(EXAMPLES / "async_tool_agent.py", job)
    async with Harness(graph, job=job, turn_input="llm.turns") as agent:
        asked = await agent.run("Book me a flight to Tokyo")
        again = await agent.run("Actually book a flight to Tokyo again")
        found = await agent.next_reply()  # the search's update, 4 s in
        booked = await agent.next_reply()  # the booking, 6 s later
        await asyncio.sleep(1.0)  # its words reach the voice
    expect = asked.expect
    expect.next_event().is_function_call(name="book_flight", arguments={"city": "Tokyo"})
    assert "goes on in the background" in expect.next_event().is_function_call_output().output
    expect.next_event().is_message(content="Searching flights to Tokyo; this takes a minute.")
    # A second booking while the first runs is refused (on_duplicate="reject").
    expect = again.expect
    expect.next_event().is_function_call(name="book_flight")
    expect.next_event().is_function_call_output(is_error=True)
    expect.next_event().is_message(content="I'm already booking one; it's under way.")
    found.expect.next_event().is_function_call(name="book_flight", arguments={"city": "Tokyo"})
    assert "Found 3 flights" in found.expect.next_event().is_function_call_output().output
    found.expect.next_event().is_message(contains="booking the cheapest")
    booked.expect.skip_next(2)
    booked.expect.next_event().is_message(
        content="Booked on the 9:40 flight to Tokyo, confirmation DL289."
    )
    assert voice.texts[-1] == "Booked on the 9:40 flight to Tokyo, confirmation DL289."


@pytest.mark.looptime
async def test_async_tool_agent_calls_the_booking_off_when_asked() -> None:
    job = live_job(tts=FakeTTS(sample_rate=24_000))
    graph = load_graph(EXAMPLES / "async_tool_agent.py", job)
    async with Harness(graph, job=job, turn_input="llm.turns", reply_timeout=20) as agent:
        await agent.run("Book me a flight to Tokyo")
        stopped = await agent.run("Never mind, cancel it")
        with pytest.raises(AssertionError, match="no reply of its own"):
            await agent.next_reply()  # the booking's result never comes
    expect = stopped.expect
    expect.next_event().is_function_call(
        name="cancel_background", arguments={"tool": "book_flight"}
    )
    assert expect.next_event().is_function_call_output().output.startswith("Stopped 'book_flight'")
    expect.next_event().is_message(content="Okay, I've called the booking off.")
