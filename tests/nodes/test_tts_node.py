"""The TTS node: sentence by sentence, tagged audio, end markers, cancellation, metrics."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from livekit import rtc
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.audio.frames import frame_from_samples, samples
from flowkit.messages import Interrupt, InterruptAction, Metrics, TextChunk
from flowkit.nodes.tts import TTS
from flowkit.providers.tts import StreamingTTSFromBatch
from flowkit.testing.fakes import FakeTTS

S1 = "Hello there, this is the first sentence."
S2 = "And here comes the second one, a bit later."


def _graph(
    tts: TTS, text: Script, interrupts: Script | None = None
) -> tuple[fk.Graph, TimedCollect, Collect]:
    g = fk.Graph("tts")
    node = g.add(tts)
    audio, metrics = TimedCollect(), Collect()
    g.add(text) >> node >> audio
    node.metrics >> metrics
    if interrupts is not None:
        g.add(interrupts) >> node.interrupt
    return g, audio, metrics


async def _run(g: fk.Graph) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fk.GraphRunner(g).run()
    return start


@pytest.mark.looptime
async def test_first_sentence_is_spoken_before_the_text_is_complete() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script(
        (0.0, TextChunk(turn_id=1, text=S1 + " ")),
        (1.0, TextChunk(turn_id=1, text=S2 + " ")),
        (2.0, TextChunk(turn_id=1, text="", final=True)),
    )
    g, audio, metrics = _graph(TTS(fake), text)
    start = await _run(g)

    frames = [(t - start, a) for t, a in audio.items if a.frame is not None]
    assert frames[0][0] == pytest.approx(0.1)  # long before the final chunk at 2.0
    assert fake.texts == [S1, S2]
    assert {a.text for _, a in frames if a.segment == 0} == {S1}
    assert {a.text for _, a in frames if a.segment == 1} == {S2}
    assert [a.segment for _, a in frames] == sorted(a.segment for _, a in frames)
    end_time, end = audio.items[-1]
    assert end.final and end.frame is None and end.turn_id == 1
    assert end_time - start == pytest.approx(2.0)
    assert all(a.turn_id == 1 for _, a in audio.items)
    assert sum(not a.final for _, a in audio.items) == len(frames)

    (m,) = collected(metrics)
    assert isinstance(m, Metrics) and m.kind == "tts" and m.turn_id == 1
    assert m.values["ttfa"] == pytest.approx(0.1)
    assert m.values["characters"] == len(S1) + len(S2)
    assert m.labels["cancelled"] is False


@pytest.mark.looptime
async def test_a_playout_marker_follows_the_audio_of_the_text_before_it() -> None:
    # Synthesis takes time (frames 20 ms apart): the marker, sent at once with the text,
    # must still come out after every frame of it, not as it arrives.
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1, frame_gap=0.02)
    text = Script(
        (0.0, TextChunk(turn_id=1, text="Let me put you through")),  # unfinished: flushed
        (0.0, TextChunk(turn_id=1, text="", flush=True, mark=7)),
        (0.0, TextChunk(turn_id=1, text=S2 + " ")),
        (0.0, TextChunk(turn_id=1, text="", final=True)),
    )
    g, audio, _ = _graph(TTS(fake), text)
    await _run(g)
    items = [a for _, a in audio.items]
    [at] = [i for i, a in enumerate(items) if a.mark]
    assert (items[at].mark, items[at].frame, items[at].final) == (7, None, False)
    assert {a.text for a in items[:at]} == {"Let me put you through"}
    assert {a.text for a in items[at + 1:-1]} == {S2} and items[-1].final
    assert fake.texts == ["Let me put you through", S2]


@pytest.mark.looptime
async def test_a_newer_turn_cancels_the_older_synthesis() -> None:
    fake = FakeTTS(seconds_per_char=0.05, ttfa=0.1, frame_gap=0.02)
    text = Script(
        (0.0, TextChunk(turn_id=1, text="This first reply is long enough to take a while.",
                        final=True)),
        (0.3, TextChunk(turn_id=2, text="Second reply.", final=True)),
    )
    g, audio, metrics = _graph(TTS(fake), text)
    start = await _run(g)

    first, second = fake.requests
    assert first.cancelled and not first.completed
    assert second.text == "Second reply." and second.completed
    assert not any(a.final for _, a in audio.items if a.turn_id == 1)
    assert [a.turn_id for _, a in audio.items if a.final] == [2]
    assert all(a.turn_id == 2 for t, a in audio.items if t - start > 0.3)
    assert any(a.turn_id == 1 for _, a in audio.items)  # it had started speaking
    by_turn = {m.turn_id: m for m in collected(metrics)}
    assert by_turn[1].labels["cancelled"] is True
    assert by_turn[2].labels["cancelled"] is False


@pytest.mark.looptime
async def test_flush_cancels_the_reply_and_drops_its_later_text() -> None:
    fake = FakeTTS(seconds_per_char=0.05, ttfa=0.1, frame_gap=0.02)
    text = Script(
        (0.0, TextChunk(turn_id=1, text="A sentence that the user will interrupt. ")),
        (0.5, TextChunk(turn_id=1, text="More words nobody wants to hear now.", final=True)),
    )
    flush = Script((0.3, Interrupt(turn_id=1, action=InterruptAction.FLUSH)))
    g, audio, _ = _graph(TTS(fake), text, flush)
    start = await _run(g)

    assert len(fake.requests) == 1 and fake.requests[0].cancelled
    assert not any(a.final for _, a in audio.items)
    assert all(t - start <= 0.3 for t, _ in audio.items)


@pytest.mark.looptime
async def test_pause_and_resume_do_not_stop_synthesis() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script((0.0, TextChunk(turn_id=1, text=S1, final=True)))
    interrupts = Script(
        (0.05, Interrupt(turn_id=1, action=InterruptAction.PAUSE)),
        (0.5, Interrupt(turn_id=1, action=InterruptAction.RESUME)),
    )
    g, audio, _ = _graph(TTS(fake), text, interrupts)
    await _run(g)
    assert fake.requests[0].completed
    assert audio.items[-1][1].final


@pytest.mark.looptime
async def test_text_of_an_older_turn_is_dropped() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script(
        (0.0, TextChunk(turn_id=2, text="The newer reply is spoken here. ")),
        (0.1, TextChunk(turn_id=1, text="An old reply that must be dropped.", final=True)),
        (0.2, TextChunk(turn_id=2, text="", final=True)),
    )
    g, audio, _ = _graph(TTS(fake), text)
    await _run(g)
    assert fake.texts == ["The newer reply is spoken here."]
    assert {a.turn_id for _, a in audio.items} == {2}
    assert audio.items[-1][1].final


@pytest.mark.looptime
async def test_a_streaming_provider_gets_one_stream_per_sentence() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script((0.0, TextChunk(turn_id=3, text=f"{S1} {S2}", final=True)))
    g, audio, _ = _graph(TTS(StreamingTTSFromBatch(fake)), text)
    await _run(g)
    assert fake.texts == [S1, S2]
    frames = [a for _, a in audio.items if a.frame is not None]
    assert {a.text for a in frames if a.segment == 0} == {S1}
    assert {a.text for a in frames if a.segment == 1} == {S2}
    assert audio.items[-1][1].final


@pytest.mark.looptime
async def test_text_that_ends_without_a_final_chunk_is_still_spoken() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script((0.0, TextChunk(turn_id=1, text="No final flag on this one")))
    g, audio, _ = _graph(TTS(fake), text)
    await _run(g)
    assert fake.texts == ["No final flag on this one"]
    assert audio.items[-1][1].final


@pytest.mark.looptime
async def test_a_failed_request_still_ends_the_reply() -> None:
    from flowkit.providers.errors import ProviderError

    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1, failures={0: ProviderError("boom")})
    text = Script(
        (0.0, TextChunk(turn_id=1, text=S1 + " ", final=True)),
        (0.5, TextChunk(turn_id=2, text=S2, final=True)),
    )
    g, audio, _ = _graph(TTS(fake), text)
    await _run(g)
    markers = [a.turn_id for _, a in audio.items if a.final]
    assert markers == [1, 2]
    assert {a.turn_id for _, a in audio.items if a.frame is not None} == {2}


def test_tts_refuses_what_is_not_a_synthesiser() -> None:
    with pytest.raises(TypeError, match="synthesize"):
        TTS(object())  # type: ignore[arg-type]



@pytest.mark.looptime
async def test_markdown_and_emoji_are_not_spoken_but_stay_in_the_frames_text() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    written = [
        "## Paris, today\n",
        "- It is **sunny** and warm \N{SUN WITH FACE}, see [the map](https://x.example).\n",
        "---\n",
        "\N{PARTY POPPER}\n",
        "Enjoy your afternoon in the sun!",
    ]
    text = Script((0.0, TextChunk(turn_id=1, text="".join(written), final=True)))
    g, audio, metrics = _graph(TTS(fake, min_sentence_length=0), text)
    await _run(g)

    spoken = ["Paris, today", "It is sunny and warm, see the map.",
              "Enjoy your afternoon in the sun!"]
    assert fake.texts == spoken
    frames = [a for _, a in audio.items if a.frame is not None]
    # segments count the sentences spoken: the rule line and the lone emoji are skipped
    by_segment = {a.segment: a.text for a in frames}
    assert by_segment == {0: written[0].strip(), 1: written[1].strip(), 2: written[4]}
    assert audio.items[-1][1].final and audio.items[-1][1].segment == 3
    (m,) = collected(metrics)
    assert m.values["characters"] == sum(len(s) for s in spoken)


@pytest.mark.looptime
async def test_no_transforms_speak_the_text_as_written() -> None:
    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script((0.0, TextChunk(turn_id=1, text="It is **sunny** today.", final=True)))
    g, _, _ = _graph(TTS(fake, text_transforms=()), text)
    await _run(g)
    assert fake.texts == ["It is **sunny** today."]


@pytest.mark.looptime
async def test_a_failing_transform_costs_only_its_sentence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_questions(sentence: str) -> str:
        if sentence.endswith("?"):
            raise ValueError("no questions")
        return sentence.upper()

    fake = FakeTTS(seconds_per_char=0.01, ttfa=0.1)
    text = Script(
        (0.0, TextChunk(turn_id=1, text="Is it sunny in Paris? It is sunny in Paris. ",
                        final=True)),
    )
    g, audio, _ = _graph(TTS(fake, text_transforms=[no_questions]), text)
    with caplog.at_level(logging.ERROR):
        await _run(g)
    assert fake.texts == ["IT IS SUNNY IN PARIS."]
    assert audio.items[-1][1].final
    assert "TTS text transform failed on 'Is it sunny in Paris?'" in caplog.text


def test_tts_refuses_a_transform_that_is_not_callable() -> None:
    fake = FakeTTS()
    with pytest.raises(TypeError, match=r"'upper' is not callable"):
        TTS(fake, text_transforms=["upper"])  # type: ignore[list-item]


def _recording(seconds: float, rate: int = 48_000, hz: float = 300.0) -> tuple[rtc.AudioFrame, ...]:
    """A tone of ``seconds`` in 20 ms frames, as read_frames reads a WAV file."""
    t = np.arange(round(seconds * rate)) / rate
    tone = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    step = rate // 50
    return tuple(
        frame_from_samples(tone[i:i + step].reshape(-1, 1), rate)
        for i in range(0, tone.size, step)
    )


@pytest.mark.looptime
async def test_recorded_speech_plays_in_the_voices_format_instead_of_its_text() -> None:
    fake = FakeTTS(sample_rate=24_000, seconds_per_char=0.01)
    notice = "This call may be recorded."
    text = Script(
        (0.0, TextChunk(turn_id=1, text="Hello")),  # held text: spoken before the recording
        (0.0, TextChunk(turn_id=1, text=notice, audio=_recording(1.5))),
        (0.0, TextChunk(turn_id=1, text=S2 + " ")),
        (0.0, TextChunk(turn_id=1, text="", final=True)),
    )
    g, audio, _ = _graph(TTS(fake), text)
    await _run(g)
    items = [a for _, a in audio.items]
    assert fake.texts == ["Hello", S2]  # the recording's text was never synthesised
    assert [a.text for a in items if a.frame is not None and a.text != notice][:1] == ["Hello"]
    recorded = [a for a in items if a.text == notice]
    assert [a.segment for a in recorded] == [1] * len(recorded)  # a sentence of its own
    assert {(a.frame.sample_rate, a.frame.num_channels) for a in recorded if a.frame} == {
        (24_000, 1)
    }
    played = np.concatenate([samples(a.frame)[:, 0] for a in recorded if a.frame is not None])
    # All of it, converted: 1.5 s at 24 kHz, its 300 Hz tone where it was.
    assert played.size == 36_000
    spectrum = np.abs(np.fft.rfft(played.astype(np.float64)))
    assert np.argmax(spectrum) * 24_000 / played.size == pytest.approx(300.0, abs=1.0)
    # Then the text after it, then the end marker.
    after = items[items.index(recorded[-1]) + 1:]
    assert {a.text for a in after[:-1]} == {S2} and after[-1].final
