"""Speech to text on an OpenAI-compatible ``/audio/transcriptions`` endpoint, and its node.

:class:`OpenAISTTProvider` is a :class:`~flowkit.providers.BatchSTT`: each utterance is
sent whole, as a 16-bit mono WAV file made in memory, and the answer's text is the result.
The :class:`OpenAISTT` node cuts utterances with a VAD (the STT node's batch mode).
"""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
import openai

from flowkit.nodes.stt import STT
from flowkit.providers.stt import SpeechResult
from flowkit.vad.contract import PCMSamples, VADProvider, check_pcm
from flowkit_openai._client import ClientPool, Connection
from flowkit_openai.errors import MALFORMED_ERRORS, malformed_answer, map_openai_error

__all__ = ["OpenAISTT", "OpenAISTTProvider", "wav_bytes"]


def wav_bytes(samples: PCMSamples, sample_rate: int) -> bytes:
    """Wrap 16-bit mono PCM in a WAV file, in memory.

    Args:
        samples: The audio, int16, one dimension.
        sample_rate: Its rate in Hz.

    Returns:
        The bytes of a RIFF/WAVE file (PCM, 1 channel, 16 bits).
    """
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        # WAV is little-endian whatever the machine is.
        out.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


class OpenAISTTProvider:
    """A :class:`~flowkit.providers.BatchSTT` on an OpenAI-compatible transcription endpoint.

    Example:
        >>> stt = OpenAISTTProvider("whisper-1", language="en")  # doctest: +SKIP
        >>> result = await stt.recognize(samples, 16_000)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "whisper-1",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 0,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """Configure the provider (no connection is made until the first request).

        Args:
            model: The transcription model, e.g. ``whisper-1`` or ``gpt-4o-mini-transcribe``.
            base_url: The API root; ``None`` for OpenAI.
            api_key: The key; ``None`` reads ``OPENAI_API_KEY``, else sends ``"not-needed"``.
            language: The default language (ISO-639-1, e.g. ``en``); ``None`` lets the
                model detect it.
            prompt: Text that guides the model (names, spelling, the previous sentence).
            timeout: Seconds to wait for the connection and for the answer.
            max_retries: Retries the SDK makes itself; 0 leaves retrying to a fallback.
            client: An SDK client to use instead of making one per event loop.
        """
        self.model = model
        self.language = language
        self.prompt = prompt
        self.connection = Connection(base_url, api_key, timeout, max_retries)
        self._clients = ClientPool(self.connection, client)

    @property
    def name(self) -> str:
        """``openai-stt:<model>``."""
        return f"openai-stt:{self.model}"

    def __repr__(self) -> str:
        return f"OpenAISTTProvider(model={self.model!r}, base_url={self.connection.base_url!r})"

    async def aclose(self) -> None:
        """Close the running event loop's HTTP client and its kept-alive connections.

        Optional: call it when a session's loop is about to end; the provider stays usable
        (the next request opens a new client).
        """
        await self._clients.aclose()

    async def recognize(
        self, samples: PCMSamples, sample_rate: int, *, language: str | None = None
    ) -> SpeechResult:
        """Transcribe one utterance.

        Args:
            samples: 16-bit mono PCM, one dimension.
            sample_rate: The samples' rate in Hz (the server resamples).
            language: A language hint for this request; the configured one when ``None``.

        Returns:
            A final result spanning the whole utterance (the JSON answer has no word times).

        Raises:
            flowkit.providers.errors.ProviderError: The request failed or the answer was
                not a transcription.
            TypeError: ``samples`` is not int16 PCM.
        """
        samples = check_pcm(samples, sample_rate)
        language = language or self.language
        options: dict[str, Any] = {}
        if language:
            # The API takes ISO-639-1; flowkit passes BCP-47 ("en-US"): keep the language.
            options["language"] = language.split("-")[0].lower()
        if self.prompt:
            options["prompt"] = self.prompt
        url = self.connection.resolved_url
        try:
            answer = await self._clients.get().audio.transcriptions.create(
                model=self.model,
                file=("speech.wav", wav_bytes(samples, sample_rate), "audio/wav"),
                response_format="json",
                **options,
            )
        except Exception as error:
            raise map_openai_error(
                self.name,
                url,
                error,
                api_key=self.connection.resolved_key,
                timeout=self.connection.timeout,
            ) from error
        try:
            text = answer.text
            if not isinstance(text, str):
                raise TypeError(f"'text' is {type(text).__name__}, not a string")
        except MALFORMED_ERRORS as error:
            raise malformed_answer(self.name, url, error) from error
        return SpeechResult(
            text=text.strip(),
            final=True,
            language=language,
            start_time=0.0,
            end_time=samples.size / sample_rate,
        )


class OpenAISTT(STT):
    """The :class:`~flowkit.nodes.stt.STT` node on an OpenAI-compatible endpoint.

    ``OpenAISTT("whisper-1")`` is ``STT(OpenAISTTProvider("whisper-1"))``: utterances are
    cut with a VAD and each is transcribed in one request.
    """

    def __init__(
        self,
        model: str = "whisper-1",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
        timeout: float = 30.0,
        speaker: str = "user",
        vad: VADProvider | None = None,
    ) -> None:
        """Create the node and its provider.

        Args:
            model: See :class:`OpenAISTTProvider`.
            base_url: See :class:`OpenAISTTProvider`.
            api_key: See :class:`OpenAISTTProvider`.
            language: See :class:`OpenAISTTProvider`.
            prompt: See :class:`OpenAISTTProvider`.
            timeout: See :class:`OpenAISTTProvider`.
            speaker: See :class:`~flowkit.nodes.stt.STT`.
            vad: See :class:`~flowkit.nodes.stt.STT`.
        """
        provider = OpenAISTTProvider(
            model,
            base_url=base_url,
            api_key=api_key,
            language=language,
            prompt=prompt,
            timeout=timeout,
        )
        super().__init__(provider, language=language, speaker=speaker, vad=vad)
