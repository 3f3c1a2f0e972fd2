"""OpenAISTTProvider and OpenAITTSProvider against the in-process fake server."""

from __future__ import annotations

import io
import time
import wave

import numpy as np
import pytest
from fake_server import SPEECH_PCM, FakeOpenAI, close_clients  # noqa: F401 (a fixture)
from flowkit_openai import (
    OpenAISTT,
    OpenAISTTProvider,
    OpenAITTS,
    OpenAITTSProvider,
    PCMFramer,
    wav_bytes,
)

from flowkit.providers import (
    BatchSTT,
    BatchTTS,
    FallbackTTS,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)

TONE = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)  # 0.5 s at 16 kHz


# Every provider a test makes has its HTTP clients closed after the test.
pytestmark = pytest.mark.usefixtures("close_clients")

def test_wav_bytes_round_trip() -> None:
    with wave.open(io.BytesIO(wav_bytes(TONE, 16_000))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), TONE)


async def test_transcription_request_and_result(server: FakeOpenAI) -> None:
    stt = OpenAISTTProvider("whisper-1", base_url=server.url("ok"), prompt="Names: Ann.")
    assert isinstance(stt, BatchSTT)
    result = await stt.recognize(TONE, 16_000, language="en-US")
    assert result.text == "hello world" and result.final
    assert result.language == "en-US" and result.end_time == pytest.approx(0.5)
    form = server.requests[-1].form
    assert form["model"] == "whisper-1" and form["language"] == "en"
    assert form["prompt"] == "Names: Ann." and form["response_format"] == "json"
    upload = form["file"]
    assert upload["filename"] == "speech.wav"
    with wave.open(io.BytesIO(upload["data"])) as wav:
        assert wav.getframerate() == 16_000 and wav.getnframes() == TONE.size


async def test_transcription_errors(server: FakeOpenAI) -> None:
    with pytest.raises(ProviderUnavailable):
        await OpenAISTTProvider(base_url=server.url("status503")).recognize(TONE, 16_000)
    with pytest.raises(ProviderRejected, match="API key"):
        await OpenAISTTProvider(base_url=server.url("status401")).recognize(TONE, 16_000)
    with pytest.raises(ProviderTimeout):
        await OpenAISTTProvider(base_url=server.url("hang"), timeout=0.3).recognize(TONE, 16_000)
    with pytest.raises(ProviderError, match="malformed answer"):
        await OpenAISTTProvider(base_url=server.url("malformed")).recognize(TONE, 16_000)


def test_framer_keeps_split_samples() -> None:
    framer = PCMFramer(1000, frame_ms=10)  # 10 samples = 20 bytes per frame
    frames = framer.push(b"\x01\x00" * 7 + b"\x02") + framer.push(b"\x00" + b"\x03\x00" * 20)
    frames += framer.flush()
    data = b"".join(bytes(f.data) for f in frames)
    assert data == b"\x01\x00" * 7 + b"\x02\x00" + b"\x03\x00" * 20
    assert [f.samples_per_channel for f in frames] == [10, 10, 8]


async def test_speech_streams_pcm_frames(server: FakeOpenAI) -> None:
    tts = OpenAITTSProvider(
        "tts-1", voice="nova", base_url=server.url("ok"), speed=1.25, instructions="Calm."
    )
    assert isinstance(tts, BatchTTS) and (tts.sample_rate, tts.num_channels) == (24_000, 1)
    frames = [frame async for frame in tts.synthesize("Hello there.")]
    assert all(f.sample_rate == 24_000 and f.num_channels == 1 for f in frames)
    assert all(f.samples_per_channel == 480 for f in frames[:-1])
    assert b"".join(bytes(f.data) for f in frames) == SPEECH_PCM
    body = server.requests[-1].json
    assert body == {
        "model": "tts-1", "voice": "nova", "input": "Hello there.", "response_format": "pcm",
        "speed": 1.25, "instructions": "Calm.",
    }


async def test_speech_yields_before_the_answer_ends(server: FakeOpenAI) -> None:
    tts = OpenAITTSProvider(base_url=server.url("stall"), sample_rate=16_000, timeout=0.5)
    frames = tts.synthesize("Hi.")
    first = await anext(frames)
    assert first.sample_rate == 16_000 and first.samples_per_channel == 320
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        async for _ in frames:
            pass
    assert time.monotonic() - started < 3.0


async def test_speech_errors_and_fallback(server: FakeOpenAI) -> None:
    with pytest.raises(ProviderUnavailable):
        async for _ in OpenAITTSProvider(base_url=server.url("status429")).synthesize("x"):
            pass
    with pytest.raises(ProviderRejected):
        async for _ in OpenAITTSProvider(base_url=server.url("status403")).synthesize("x"):
            pass
    fallback = FallbackTTS(
        [
            OpenAITTSProvider(base_url=server.url("status500")),
            OpenAITTSProvider(base_url=server.url("ok")),
        ],
        max_retry=0,
    )
    frames = [frame async for frame in fallback.synthesize("Hello.")]
    assert b"".join(bytes(f.data) for f in frames) == SPEECH_PCM


def test_nodes_wrap_the_providers() -> None:
    stt = OpenAISTT("whisper-1", base_url="http://127.0.0.1:1/v1", language="en")
    # A batch recogniser is wrapped in a VAD-cut stream by the STT node.
    assert stt.params.provider.name == "openai-stt:whisper-1"  # type: ignore[attr-defined]
    tts = OpenAITTS("tts-1", voice="echo", sample_rate=22_050)
    provider = tts.params.provider  # type: ignore[attr-defined]
    assert isinstance(provider, OpenAITTSProvider) and provider.sample_rate == 22_050
