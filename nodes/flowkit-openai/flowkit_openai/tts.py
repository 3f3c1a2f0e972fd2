"""Text to speech on an OpenAI-compatible ``/audio/speech`` endpoint, and its node.

:class:`OpenAITTSProvider` asks for raw PCM (``response_format="pcm"``: 16-bit signed
little-endian mono, 24 kHz on OpenAI) and streams it: audio frames go out as the bytes
arrive, so speech starts before the server has finished. Network chunks split samples
anywhere, so an odd byte is kept for the next chunk.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import numpy as np
import openai
from livekit import rtc

from flowkit.nodes.tts import TTS
from flowkit_openai._client import ClientPool, Connection
from flowkit_openai.errors import map_openai_error

__all__ = ["OpenAITTS", "OpenAITTSProvider", "PCMFramer"]

_SAMPLE_WIDTH = 2


class PCMFramer:
    """Cuts a stream of 16-bit mono PCM bytes into frames of a fixed duration.

    Example:
        >>> framer = PCMFramer(24_000, frame_ms=20)
        >>> [f.samples_per_channel for f in framer.push(bytes(1000))]
        [480]
        >>> [f.samples_per_channel for f in framer.flush()]
        [20]
    """

    def __init__(self, sample_rate: int, *, frame_ms: float = 20.0) -> None:
        """Start with nothing buffered.

        Args:
            sample_rate: The audio's rate in Hz.
            frame_ms: The duration of each frame but the last, in milliseconds.

        Raises:
            ValueError: A rate or frame duration that is not positive.
        """
        if sample_rate <= 0 or frame_ms <= 0:
            raise ValueError(
                f"PCMFramer needs a positive sample_rate and frame_ms, got {sample_rate} Hz "
                f"and {frame_ms} ms"
            )
        self.sample_rate = sample_rate
        self._frame_bytes = max(1, round(sample_rate * frame_ms / 1000)) * _SAMPLE_WIDTH
        self._buffer = bytearray()

    def push(self, data: bytes) -> list[rtc.AudioFrame]:
        """Add bytes; return the whole frames they complete."""
        self._buffer += data
        frames: list[rtc.AudioFrame] = []
        while len(self._buffer) >= self._frame_bytes:
            frames.append(self._frame(bytes(self._buffer[: self._frame_bytes])))
            del self._buffer[: self._frame_bytes]
        return frames

    def flush(self) -> list[rtc.AudioFrame]:
        """End of the stream: the last, shorter frame (an odd trailing byte is dropped)."""
        usable = len(self._buffer) - len(self._buffer) % _SAMPLE_WIDTH
        data, self._buffer = bytes(self._buffer[:usable]), bytearray()
        return [self._frame(data)] if data else []

    def _frame(self, data: bytes) -> rtc.AudioFrame:
        if sys.byteorder != "little":
            data = np.frombuffer(data, dtype="<i2").astype(np.int16).tobytes()
        return rtc.AudioFrame(
            data=data,
            sample_rate=self.sample_rate,
            num_channels=1,
            samples_per_channel=len(data) // _SAMPLE_WIDTH,
        )


class OpenAITTSProvider:
    """A :class:`~flowkit.providers.BatchTTS` on an OpenAI-compatible speech endpoint.

    Example:
        >>> tts = OpenAITTSProvider("gpt-4o-mini-tts", voice="alloy")  # doctest: +SKIP
        >>> async for frame in tts.synthesize("Hello!"):  # doctest: +SKIP
        ...     play(frame)
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-tts",
        *,
        voice: str = "alloy",
        base_url: str | None = None,
        api_key: str | None = None,
        sample_rate: int = 24_000,
        instructions: str | None = None,
        speed: float | None = None,
        frame_ms: float = 20.0,
        timeout: float = 30.0,
        max_retries: int = 0,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """Configure the provider (no connection is made until the first request).

        Args:
            model: The speech model, e.g. ``gpt-4o-mini-tts`` or ``tts-1``.
            voice: The voice's name.
            base_url: The API root; ``None`` for OpenAI.
            api_key: The key; ``None`` reads ``OPENAI_API_KEY``, else sends ``"not-needed"``.
            sample_rate: The rate of the PCM the server sends: 24000 for OpenAI; set it to
                what another server sends (the format has no header to say so).
            instructions: How to speak (tone, accent), for models that take it.
            speed: Speaking speed (0.25 to 4.0); ``None`` for the server's default.
            frame_ms: Duration of the frames yielded, in milliseconds.
            timeout: Seconds to wait for the connection and for each piece of audio.
            max_retries: Retries the SDK makes itself; 0 leaves retrying to a fallback.
            client: An SDK client to use instead of making one per event loop.

        Raises:
            ValueError: A sample rate or frame duration that is not positive.
        """
        PCMFramer(sample_rate, frame_ms=frame_ms)  # checks the two values now
        self.model = model
        self.voice = voice
        self.instructions = instructions
        self.speed = speed
        self.frame_ms = frame_ms
        self._sample_rate = sample_rate
        self.connection = Connection(base_url, api_key, timeout, max_retries)
        self._clients = ClientPool(self.connection, client)

    @property
    def name(self) -> str:
        """``openai-tts:<model>/<voice>``."""
        return f"openai-tts:{self.model}/{self.voice}"

    @property
    def sample_rate(self) -> int:
        """The rate of the audio, in Hz."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Always 1: the PCM format is mono."""
        return 1

    def __repr__(self) -> str:
        return (
            f"OpenAITTSProvider(model={self.model!r}, voice={self.voice!r}, "
            f"base_url={self.connection.base_url!r})"
        )

    async def aclose(self) -> None:
        """Close the running event loop's HTTP client and its kept-alive connections.

        Optional: call it when a session's loop is about to end; the provider stays usable
        (the next request opens a new client).
        """
        await self._clients.aclose()

    def synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        """Speak ``text``, yielding frames of ``frame_ms`` as the audio arrives.

        Closing the iterator closes the HTTP response.

        Raises:
            flowkit.providers.errors.ProviderError: From the iteration, when it fails.
        """
        return self._synthesize(text)

    async def _synthesize(self, text: str) -> AsyncIterator[rtc.AudioFrame]:
        options: dict[str, object] = {}
        if self.instructions:
            options["instructions"] = self.instructions
        if self.speed is not None:
            options["speed"] = self.speed
        framer = PCMFramer(self._sample_rate, frame_ms=self.frame_ms)
        speech = self._clients.get().audio.speech.with_streaming_response
        try:
            async with speech.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="pcm",
                **options,  # type: ignore[arg-type]
            ) as response:
                chunks = response.iter_bytes()
                while True:
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    for frame in framer.push(chunk):
                        yield frame
        except Exception as error:
            # Closing the iterator (GeneratorExit) and cancellation are BaseExceptions and
            # pass through, closing the response on the way out.
            raise self._error(error) from error
        for frame in framer.flush():
            yield frame

    def _error(self, error: BaseException) -> Exception:
        return map_openai_error(
            self.name,
            self.connection.resolved_url,
            error,
            api_key=self.connection.resolved_key,
            timeout=self.connection.timeout,
        )


class OpenAITTS(TTS):
    """The :class:`~flowkit.nodes.tts.TTS` node on an OpenAI-compatible endpoint.

    ``OpenAITTS("tts-1", voice="nova")`` is ``TTS(OpenAITTSProvider("tts-1", voice="nova"))``.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-tts",
        *,
        voice: str = "alloy",
        base_url: str | None = None,
        api_key: str | None = None,
        sample_rate: int = 24_000,
        instructions: str | None = None,
        speed: float | None = None,
        timeout: float = 30.0,
        min_sentence_length: int = 20,
    ) -> None:
        """Create the node and its provider.

        Args:
            model: See :class:`OpenAITTSProvider`.
            voice: See :class:`OpenAITTSProvider`.
            base_url: See :class:`OpenAITTSProvider`.
            api_key: See :class:`OpenAITTSProvider`.
            sample_rate: See :class:`OpenAITTSProvider`.
            instructions: See :class:`OpenAITTSProvider`.
            speed: See :class:`OpenAITTSProvider`.
            timeout: See :class:`OpenAITTSProvider`.
            min_sentence_length: See :class:`~flowkit.nodes.tts.TTS`.
        """
        provider = OpenAITTSProvider(
            model,
            voice=voice,
            base_url=base_url,
            api_key=api_key,
            sample_rate=sample_rate,
            instructions=instructions,
            speed=speed,
            timeout=timeout,
        )
        super().__init__(provider, min_sentence_length=min_sentence_length)
