"""The computer's microphone and speakers as the console's audio (``flowkit console --audio``).

LiveKit Agents' ``console`` mode talks to an agent through the local sound devices; these
are flowkit's, on PortAudio through ``sounddevice`` (the ``console`` extra, and the system's
``libportaudio2``):

- :class:`DeviceAudioInput`: the default (or a named) input device, at the rate the room
  source asks for, each block handed to the graph from PortAudio's thread as it is captured
  (:class:`~flowkit.room_io.PushAudioInput`);
- :class:`DeviceAudioOutput`: the default (or a named) output device; ``write`` queues a
  frame and returns while less than ``queue_s`` is waiting, and says how much is
  (:class:`~flowkit.room_io.QueuedAudioOutput`), so the room sink's reports (finished, what
  was heard of a cut reply) hold as in a LiveKit room.

With an :class:`EchoCanceller` shared by the two, what the speakers play is taken out of
what the microphone hears (WebRTC's echo canceller from the livekit SDK, as LiveKit Agents'
console does), so an agent on a laptop's speakers does not hear, and answer, itself.

Each device opens when the graph first reads or writes, and a missing device or library is
an error that names the remedy.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from livekit import rtc

from flowkit.nodes.audio import _Resampler
from flowkit.nodes.audio_processing import TenMsPieces
from flowkit.ports import AudioFormat

__all__ = ["DeviceAudioInput", "DeviceAudioOutput", "EchoCanceller", "sound_devices"]


def sound_devices() -> Any:
    """The ``sounddevice`` module, or an error that says what to install.

    Raises:
        RuntimeError: ``sounddevice`` or the PortAudio library is missing.
    """
    try:
        import sounddevice
    except ImportError as exc:
        raise RuntimeError(
            "flowkit console --audio needs the sounddevice package: pip install "
            "'flowkit-agents[console]'"
        ) from exc
    except OSError as exc:  # sounddevice raises it when the PortAudio library is missing
        raise RuntimeError(
            f"flowkit console --audio needs the PortAudio library ({exc}); install it "
            "(Debian: apt-get install libportaudio2)"
        ) from exc
    return sounddevice


class EchoCanceller:
    """WebRTC's echo canceller between the speakers and the microphone of one console.

    The speakers hand it what they played (:meth:`played`, from PortAudio's thread: it is
    moved to the loop), the microphone each block it captured (:meth:`clean`, on the loop),
    in the order they happen; the module learns the path from one to the other and takes
    the echo out of the block in place. The delay between them is the two devices'
    latencies (:meth:`set_delay`), which the module refines itself.

    Args:
        rate: The rate the module works at: the microphone's (8, 16, 32 or 48 kHz); what the
            speakers played is converted to it.
    """

    def __init__(self, rate: int = 48_000) -> None:
        self.rate = rate
        self._module = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resampler: _Resampler | None = None
        self._far = TenMsPieces(self._module.process_reverse_stream, "the echo canceller")
        self._near = TenMsPieces(self._module.process_stream, "the echo canceller")

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that :meth:`played` hands the audio to (the devices' loop)."""
        self._loop = loop

    def set_delay(self, seconds: float) -> None:
        """The time from a sample played to its echo captured: both devices' latency."""
        self._module.set_stream_delay_ms(max(round(seconds * 1000), 0))

    def played(self, data: bytes, rate: int, channels: int) -> None:
        """The speakers played ``data`` (int16, interleaved) just now; any thread."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed first
                self._loop.call_soon_threadsafe(self._far_end, data, rate, channels)

    def clean(self, frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
        """``frame`` from the microphone with the echo taken out (none while short of 10 ms).

        Raises:
            ValueError: The microphone's audio is not mono at :attr:`rate`.
        """
        if (frame.sample_rate, frame.num_channels) != (self.rate, 1):
            raise ValueError(
                f"the echo canceller works on {self.rate} Hz mono microphone audio, not "
                f"{frame.sample_rate} Hz x{frame.num_channels}; open the microphone so"
            )
        return self._near.push(frame)

    def _far_end(self, data: bytes, rate: int, channels: int) -> None:
        frame = rtc.AudioFrame(data, rate, channels, len(data) // (2 * channels))
        if (rate, channels) == (self.rate, 1):
            converted: tuple[rtc.AudioFrame, ...] = (frame,)
        else:
            if self._resampler is None:
                self._resampler = _Resampler(self.rate, 1, "HQ")
            converted = self._resampler.push(frame)
        for out in converted:
            self._far.push(out)


class DeviceAudioInput:
    """The microphone, as the room source's input (see the module).

    Args:
        fmt: The rate and channels to capture at.
        closed: Set when the console ends: the input ends then.
        device: The input device (a name or index; ``None``: the default).
        echo: Takes the speakers' echo out of each block (the canceller the speakers feed).
    """

    def __init__(
        self, fmt: AudioFormat, closed: asyncio.Event, device: Any = None,
        echo: EchoCanceller | None = None,
    ) -> None:
        self.format = fmt
        self.device = device
        self.echo = echo
        self.latency = 0.0
        """The device's input latency, once open."""
        self._closed = closed

    async def deliver(self, on_frame: Callable[[rtc.AudioFrame], None]) -> None:
        """Call ``on_frame`` with each 20 ms block captured, until the console ends.

        Raises:
            RuntimeError: No input device, or it cannot capture this format.
        """
        sd = sound_devices()
        loop = asyncio.get_running_loop()
        rate, channels = self.format.sample_rate, self.format.num_channels
        block = rate // 50
        failed: list[BaseException] = []
        done = asyncio.Event()

        def deliver_one(data: bytes) -> None:
            if done.is_set():
                return
            try:
                frame = rtc.AudioFrame(data, rate, channels, block)
                for heard in (frame,) if self.echo is None else self.echo.clean(frame):
                    on_frame(heard)
            except BaseException as exc:  # the graph's error: stop capturing, raise it
                failed.append(exc)
                done.set()

        def captured(indata: Any, frames: int, when: Any, status: Any) -> None:
            # PortAudio's thread: hand a copy to the loop, nothing else here.
            with contextlib.suppress(RuntimeError):  # the loop closed first
                loop.call_soon_threadsafe(deliver_one, bytes(indata))

        try:
            stream = sd.RawInputStream(
                samplerate=rate, channels=channels, dtype="int16", blocksize=block,
                device=self.device, callback=captured,
            )
        except Exception as exc:
            raise RuntimeError(
                f"cannot open the microphone ({self.device or 'default input'}) at "
                f"{self.format}: {exc}; check `python -m sounddevice` for the devices"
            ) from exc
        self.latency = float(stream.latency)
        if self.echo is not None:
            self.echo.bind(loop)
        with stream:
            closed = asyncio.ensure_future(self._closed.wait())
            stopped = asyncio.ensure_future(done.wait())
            try:
                await asyncio.wait({closed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                stopped.cancel()
                done.set()
        if failed:
            raise failed[0]

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The captured blocks as an async iterator (for readers that pull)."""
        queue: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        capture = asyncio.ensure_future(self.deliver(queue.put_nowait))
        capture.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (frame := await queue.get()) is not None:
                yield frame
        finally:
            capture.cancel()


class DeviceAudioOutput:
    """The speakers, as the agent's voice output (see the module).

    Args:
        fmt: The voice's rate and channels.
        device: The output device (a name or index; ``None``: the default).
        queue_s: How far ``write`` may run ahead of what is heard.
        echo: Told what the speakers play, to take its echo out of the microphone.
        microphone: The microphone the echo reaches (its latency adds to the delay).
    """

    def __init__(
        self, fmt: AudioFormat, device: Any = None, queue_s: float = 0.2,
        echo: EchoCanceller | None = None, microphone: DeviceAudioInput | None = None,
    ) -> None:
        self.format = fmt
        self.device = device
        self.queue_s = queue_s
        self.echo = echo
        self._microphone = microphone
        self.written = 0.0
        """Seconds of audio written so far."""
        self._bytes_per_s = fmt.sample_rate * fmt.num_channels * 2
        self._buffer = bytearray()
        self._drained_at: float | None = None  # when the device took the last audio waiting
        self._lock = threading.Lock()
        self._stream: Any = None

    @property
    def paced(self) -> bool:
        """Always ``True``: ``write`` returns once the frame is at most ``queue_s`` ahead."""
        return True

    @property
    def queued_seconds(self) -> float:
        """Seconds written and not yet played: waiting here, and in the device's buffer."""
        with self._lock:
            waiting = len(self._buffer) / self._bytes_per_s
            drained_at = self._drained_at
        latency = float(self._stream.latency) if self._stream is not None else 0.0
        if waiting > 0:
            return waiting + latency
        if drained_at is None:
            return 0.0
        # The last audio left the buffer then; the device plays it for its latency after.
        return max(latency - (time.monotonic() - drained_at), 0.0)

    async def write(self, frame: rtc.AudioFrame) -> None:
        """Queue ``frame`` for the speakers; return once at most ``queue_s`` is waiting.

        Raises:
            ValueError: The frame's format is not the output's.
            RuntimeError: No output device, or it cannot play this format.
        """
        have = AudioFormat(frame.sample_rate, frame.num_channels)
        if have != self.format:
            raise ValueError(
                f"the speakers were opened at {self.format} but got a {have} frame; make "
                "every TTS feeding the room sink speak one format"
            )
        if self._stream is None:
            self._open()
        while (ahead := self.queued_seconds - self.queue_s) > 0:
            await asyncio.sleep(ahead)
        count = frame.samples_per_channel * frame.num_channels
        with self._lock:
            self._buffer += frame.data[:count].cast("B")
        self.written += frame.duration

    def clear(self) -> None:
        """Drop what waits to be played (barge-in)."""
        with self._lock:
            self._buffer.clear()
            self._drained_at = None

    async def aclose(self) -> None:
        """Play what waits, then close the device."""
        while (left := self.queued_seconds) > 0:
            await asyncio.sleep(left)
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def _open(self) -> None:
        sd = sound_devices()
        rate, channels = self.format.sample_rate, self.format.num_channels
        echo = self.echo

        def play(outdata: Any, frames: int, when: Any, status: Any) -> None:
            # PortAudio's thread: what waits, then silence.
            wanted = len(outdata)
            with self._lock:
                chunk = bytes(self._buffer[:wanted])
                del self._buffer[:wanted]
                if chunk and not self._buffer:
                    self._drained_at = time.monotonic()
            outdata[: len(chunk)] = chunk
            outdata[len(chunk):] = b"\x00" * (wanted - len(chunk))
            if echo is not None:
                echo.played(bytes(outdata), rate, channels)

        try:
            self._stream = sd.RawOutputStream(
                samplerate=rate, channels=channels, dtype="int16", blocksize=rate // 50,
                device=self.device, callback=play,
            )
            self._stream.start()
            if echo is not None:
                echo.bind(asyncio.get_running_loop())
                heard = self._microphone.latency if self._microphone is not None else 0.0
                echo.set_delay(float(self._stream.latency) + heard)
        except Exception as exc:
            self._stream = None
            raise RuntimeError(
                f"cannot open the speakers ({self.device or 'default output'}) at "
                f"{self.format}: {exc}; check `python -m sounddevice` for the devices"
            ) from exc
