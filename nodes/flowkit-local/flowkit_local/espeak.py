"""espeak-ng text to speech through ctypes: a robotic but tiny and very fast local voice.

The library and its voice data come from the ``espeakng-loader`` wheel, so nothing is
installed system-wide or downloaded. Synthesis runs a few hundred times faster than real
time, which makes espeak a good voice for tests and a last-resort fallback; Piper sounds far
better for users. Its word events time each word (:mod:`flowkit.providers.tts_words`).

**Threads.** libespeak-ng keeps its state (voice, rate, pitch, output callback) in process
globals and is not re-entrant, so every call into it goes through one process-wide lock
held by :class:`_Engine`: syntheses from many sessions run one at a time, each on an
executor thread (``loop.run_in_executor``) so that the event loop is never blocked. Another
library in the same process that drives the same ``libespeak-ng.so`` file directly (some
phonemizers do) bypasses this lock and must not run at the same time.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import re
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import espeakng_loader  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from livekit import rtc

from flowkit.audio import frame_from_samples
from flowkit.messages import TimedWord
from flowkit.nodes.tts import TTS
from flowkit.providers.tts_words import attach_timed_words

__all__ = ["EspeakTTS", "EspeakTTSOptions", "EspeakTTSProvider"]

# espeak_AUDIO_OUTPUT: samples go to the callback, and espeak_Synth returns when all were.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# Without it a bad data path makes the library call exit() and take the process with it.
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
# A short pause after the text, as the espeak-ng command line adds: sentences synthesised
# one by one then do not run into each other.
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events); returning 1 aborts.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# espeak_EVENT_TYPE values: the list's terminator, a word starting, a clause ending.
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END = 0, 1, 5


class _Event(ctypes.Structure):
    """espeak_EVENT: what the synthesis reached, and where in the audio (ms from its start)."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, from 1
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


class _VoiceSpec(ctypes.Structure):
    """espeak_VOICE: what espeak_SetVoiceByProperties matches a voice against."""

    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EspeakTTSOptions:
    """Settings of :class:`EspeakTTSProvider`.

    Attributes:
        voice: An espeak-ng voice name, e.g. ``"en-us"``, ``"en-gb"``, ``"fr"``, ``"de"``.
        rate: Speaking rate in words per minute, 80 to 450 (espeak's default is 175).
        pitch: Base pitch, 0 to 100 (espeak's default is 50).
        frame_ms: Length of the audio frames yielded, in milliseconds.
    """

    voice: str = "en-us"
    rate: int = 175
    pitch: int = 50
    frame_ms: float = 20.0

    def __post_init__(self) -> None:
        if not self.voice or "\0" in self.voice:
            raise ValueError(
                f"voice must be an espeak-ng voice name such as 'en-us', got {self.voice!r}"
            )
        if not 80 <= self.rate <= 450:
            raise ValueError(
                f"rate must be 80 to 450 words per minute, got {self.rate}; espeak's default is 175"
            )
        if not 0 <= self.pitch <= 100:
            raise ValueError(f"pitch must be 0 to 100, got {self.pitch}; espeak's default is 50")
        if not (math.isfinite(self.frame_ms) and 5.0 <= self.frame_ms <= 200.0):
            raise ValueError(f"frame_ms must be 5 to 200 ms, got {self.frame_ms}; try 20")


class _Request:
    """One synthesis' audio, collected by the callback, and its cancellation flag."""

    def __init__(self) -> None:
        self.chunks: list[npt.NDArray[np.int16]] = []
        self.cancelled = False
        # (event type, text position from 1, audio ms) of each word start and clause end.
        self.marks: list[tuple[int, int, int]] = []


class _Engine:
    """The process's one libespeak-ng: loaded once, every call made under one lock."""

    _instance: _Engine | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_VoiceSpec)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data = str(espeakng_loader.get_data_path()).encode()
        rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT))
        if rate <= 0:
            raise RuntimeError(
                f"espeak-ng failed to initialise (code {rate}) with its data at "
                f"{data.decode()}; reinstall espeakng-loader"
            )
        self.sample_rate = rate
        self._lib = lib
        self._current: _Request | None = None
        # Kept referenced for the library's lifetime: ctypes frees an unreferenced callback.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)
        self._applied: EspeakTTSOptions | None = None

    @classmethod
    def get(cls) -> _Engine:
        """The engine, loaded on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = _Engine()
            return cls._instance

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: int) -> int:
        request = self._current
        if request is None:
            return 1
        if wav and count > 0:
            request.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.int16))
        if events:
            listed = ctypes.cast(events, ctypes.POINTER(_Event))
            index = 0
            while (event := listed[index]).type != _EVENT_LIST_TERMINATED:
                if event.type in (_EVENT_WORD, _EVENT_END):
                    request.marks.append(
                        (event.type, event.text_position, event.audio_position)
                    )
                index += 1
        return 1 if request.cancelled else 0

    def _apply(self, options: EspeakTTSOptions) -> None:
        """Make ``options`` the library's settings (with the lock held)."""
        if self._applied == options:
            return
        self._applied = None
        name = options.voice.encode()
        # A name or file ("en-us", "gmw/en") first, then a language tag ("en-gb" has no
        # file of its own: it is the language of the voice "gmw/en").
        if (
            self._lib.espeak_SetVoiceByName(name) != _EE_OK
            and self._lib.espeak_SetVoiceByProperties(ctypes.byref(_VoiceSpec(languages=name)))
            != _EE_OK
        ):
            raise ValueError(
                f"espeak-ng has no voice {options.voice!r}; use a voice name or language "
                "tag such as 'en-us', 'en-gb', 'fr' or 'de' (`espeak-ng --voices` lists them)"
            )
        self._lib.espeak_SetParameter(_PARAM_RATE, options.rate, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, options.pitch, 0)
        self._applied = options

    def check(self, options: EspeakTTSOptions) -> None:
        """Raise now, not at the first synthesis, when the voice does not exist."""
        with self.lock:
            self._apply(options)

    def synthesize(self, text: str, options: EspeakTTSOptions, request: _Request) -> None:
        """Speak ``text`` into ``request.chunks``; blocks until done (call on a thread)."""
        data = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(data, len(data))
        with self.lock:
            if request.cancelled:
                return
            self._apply(options)
            self._current = request
            try:
                code = self._lib.espeak_Synth(
                    buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
            finally:
                self._current = None
        if code != _EE_OK and not request.cancelled:
            raise RuntimeError(f"espeak-ng failed to synthesise {text[:40]!r} (code {code})")


def _timed_words(
    text: str, marks: Sequence[tuple[int, int, int]], seconds: float
) -> list[TimedWord]:
    """Each word of ``text`` timed from espeak-ng's events.

    espeak-ng reports where each word it speaks starts (a number may be several: ``23`` is
    "twenty" and "three", both within the written word) and where each clause ends. A word
    runs from its first start to the next mark past its text (so a pause after a comma
    counts to the word before it); one it said nothing for (a lone dash) is empty, where
    the word before it ended.

    Args:
        text: What was synthesised.
        marks: ``(event type, text position from 1, audio ms)`` in the order reported.
        seconds: The length of the audio.

    Returns:
        One timing per whitespace-separated word, in order; none without word events.
    """
    starts = [(position - 1, ms / 1000.0) for kind, position, ms in marks if kind == _EVENT_WORD]
    if not starts:
        return []
    words: list[TimedWord] = []
    last_end = 0.0
    for word in re.finditer(r"\S+", text):
        spoken = [at for position, at in starts if word.start() <= position < word.end()]
        if not spoken:
            words.append(TimedWord(word.group(), last_end, last_end))
            continue
        start = max(spoken[0], last_end)
        ends = [ms / 1000.0 for _, position, ms in marks
                if position - 1 >= word.end() and ms / 1000.0 > start]
        last_end = min(ends[0] if ends else seconds, seconds)
        words.append(TimedWord(word.group(), start, max(start, last_end)))
    return words


class EspeakTTSProvider:
    """espeak-ng as a :class:`~flowkit.providers.BatchTTS`: mono 16-bit PCM, usually 22050 Hz.

    The library is loaded when the first provider is made. Syntheses run on executor
    threads, one at a time across the process (see the module documentation).

    Example:
        >>> tts = EspeakTTSProvider(EspeakTTSOptions(voice="en-gb", rate=160))
        >>> tts.sample_rate
        22050
    """

    def __init__(self, options: EspeakTTSOptions | None = None) -> None:
        """Load espeak-ng and check the voice.

        Args:
            options: Voice, rate and pitch; ``en-us`` at 175 words per minute by default.

        Raises:
            ValueError: The voice does not exist.
            RuntimeError: The library could not be initialised.
        """
        self._options = options if options is not None else EspeakTTSOptions()
        self._engine = _Engine.get()
        self._engine.check(self._options)
        self._frame = max(1, round(self._engine.sample_rate * self._options.frame_ms / 1000.0))

    @property
    def options(self) -> EspeakTTSOptions:
        """The voice settings."""
        return self._options

    @property
    def name(self) -> str:
        """``espeak-ng/<voice>``."""
        return f"espeak-ng/{self._options.voice}"

    @property
    def sample_rate(self) -> int:
        """The rate espeak-ng reported when it was initialised (usually 22050 Hz)."""
        return self._engine.sample_rate

    @property
    def num_channels(self) -> int:
        """Always 1."""
        return 1

    def synthesize_sync(self, text: str) -> npt.NDArray[np.int16]:
        """Speak ``text`` on the calling thread and return all its samples at once.

        Args:
            text: The text to speak (UTF-8; empty text gives no samples).

        Returns:
            Mono 16-bit PCM at :attr:`sample_rate`.

        Raises:
            RuntimeError: espeak-ng failed.
        """
        request = _Request()
        self._engine.synthesize(text, self._options, request)
        if not request.chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(request.chunks)

    async def synthesize(self, text: str) -> AsyncGenerator[rtc.AudioFrame, None]:
        """Speak ``text``, yielding frames of ``frame_ms`` (the last may be shorter).

        The text is synthesised whole on an executor thread (espeak takes milliseconds per
        sentence) and then cut into frames. Cancelling the reader stops the synthesis at
        its next chunk of audio.

        Args:
            text: The text to speak; blank text yields nothing.

        Yields:
            Mono 16-bit frames at :attr:`sample_rate`.

        Raises:
            RuntimeError: espeak-ng failed.
        """
        if not text.strip():
            return
        request = _Request()
        loop = asyncio.get_running_loop()
        try:
            # run_in_executor, not to_thread: flowkit's FastForwardLoop counts executor
            # futures as work in progress and does not skip virtual time past them.
            await loop.run_in_executor(None, self._engine.synthesize, text, self._options, request)
        except BaseException:
            request.cancelled = True
            raise
        if not request.chunks:
            return
        pcm = np.concatenate(request.chunks)
        request.chunks = []
        words = _timed_words(text, request.marks, pcm.size / self.sample_rate)
        step = self._frame
        for first in range(0, pcm.size, step):
            frame = frame_from_samples(pcm[first : first + step], self.sample_rate)
            if words and not first:
                attach_timed_words(frame, words)  # every word's timing, on the first frame
            yield frame

    def __repr__(self) -> str:
        return f"EspeakTTSProvider({self._options!r})"


class EspeakTTS(TTS):
    """The :class:`~flowkit.nodes.tts.TTS` node speaking with espeak-ng."""

    def __init__(
        self,
        *,
        voice: str = "en-us",
        rate: int = 175,
        pitch: int = 50,
        min_sentence_length: int = 20,
    ) -> None:
        """Create the node.

        Args:
            voice: An espeak-ng voice name, e.g. ``"en-us"``.
            rate: Words per minute, 80 to 450.
            pitch: Base pitch, 0 to 100.
            min_sentence_length: Sentences shorter than this many characters are joined
                with the next one.

        Raises:
            ValueError: An option is out of range or the voice does not exist.
        """
        provider = EspeakTTSProvider(EspeakTTSOptions(voice=voice, rate=rate, pitch=pitch))
        super().__init__(provider, min_sentence_length=min_sentence_length)
