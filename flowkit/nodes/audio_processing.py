"""Noise suppression, a high-pass filter and gain control for the user's audio: WebRTC's APM.

:class:`AudioProcessing` runs each frame through the audio processing module of the WebRTC
stack that the ``livekit`` SDK ships (``rtc.AudioProcessingModule``), on the graph's input
side: the same noise suppressor, high-pass filter and automatic gain control a browser
applies to its microphone. On a phone line or a client that sends its audio raw, it takes
out steady noise (fans, traffic, line hiss) before the VAD, the turn model and the STT hear
it, so the noise neither starts turns nor barges in nor reaches the transcript. LiveKit
Agents offers noise cancellation as a LiveKit Cloud plugin (Krisp's BVC); this one runs on
the machine, at no cost per minute.

The module works on 10 ms frames at 8, 16, 32 or 48 kHz: the node cuts each frame into
10 ms pieces, processes them in place, and sends them on joined into one frame, so a 20 ms
frame in is a 20 ms frame out (a length that is not a whole number of 10 ms carries its
remainder into the next frame). The module holds no audio back: the output is as early as
the input. Its cost is measured in ``bench/audio_processing.py``.

Echo cancellation is left off: it needs the agent's voice as played, frame by frame with
the playout delay, which a LiveKit client cancels on its own side already.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import numpy as np
import pydantic
from livekit import rtc
from reactivex import Observable

from flowkit.node import Node, NodeParams
from flowkit.ports import In, Out
from flowkit.runtime.stage import Stage

__all__ = ["APM_RATES", "AudioProcessing", "TenMsPieces"]

APM_RATES = (8_000, 16_000, 32_000, 48_000)
"""The sample rates WebRTC's audio processing module takes."""


class AudioProcessing(Node):
    """The user's audio through WebRTC's audio processing (see the module).

    Args:
        noise_suppression: Take out steady background noise.
        high_pass_filter: Take out rumble below about 80 Hz (and a DC offset).
        auto_gain_control: Bring a quiet or loud voice to a steady level.

    Raises:
        ValueError: Every feature is off (the node would do nothing).
    """

    class Params(NodeParams):
        """Parameters of :class:`AudioProcessing`."""

        noise_suppression: bool = pydantic.Field(
            default=True, description="take out steady background noise"
        )
        high_pass_filter: bool = pydantic.Field(
            default=True, description="take out rumble below about 80 Hz"
        )
        auto_gain_control: bool = pydantic.Field(
            default=False, description="bring the voice to a steady level"
        )

    audio: In[rtc.AudioFrame] = In(doc="16-bit audio at 8, 16, 32 or 48 kHz")
    out: Out[rtc.AudioFrame] = Out(doc="the same audio, processed")

    def __init__(
        self,
        *,
        noise_suppression: bool = True,
        high_pass_filter: bool = True,
        auto_gain_control: bool = False,
    ) -> None:
        if not (noise_suppression or high_pass_filter or auto_gain_control):
            raise ValueError(
                "AudioProcessing with every feature off would pass the audio through; turn "
                "one on (noise_suppression, high_pass_filter, auto_gain_control) or leave "
                "the node out"
            )
        super().__init__(
            noise_suppression=noise_suppression, high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )

    @property
    def settings(self) -> AudioProcessing.Params:
        """The validated parameters, typed."""
        return typing.cast(AudioProcessing.Params, self.params)

    def wire(self, audio: Observable[rtc.AudioFrame]) -> Observable[rtc.AudioFrame]:
        """Process each frame as it arrives, one module per run (its state is the stream's)."""
        p = self.settings
        module = rtc.AudioProcessingModule(
            noise_suppression=p.noise_suppression, high_pass_filter=p.high_pass_filter,
            auto_gain_control=p.auto_gain_control,
        )
        pieces = TenMsPieces(module.process_stream, f"AudioProcessing {self.name!r}")
        return Stage(audio, pieces.push)


class TenMsPieces:
    """Audio through one of the module's calls in the 10 ms pieces it takes, in place.

    The node's core, and the console's echo canceller's (both its streams): each frame is
    cut into 10 ms pieces, each goes through ``process`` (which changes a frame's own buffer,
    as ``rtc.AudioProcessingModule.process_stream`` does), and they come out joined back into
    one frame; a length short of a whole 10 ms waits for the next frame.

    Args:
        process: ``module.process_stream`` or ``module.process_reverse_stream``.
        owner: Who processes, for the errors (``AudioProcessing 'denoise'``).
    """

    __slots__ = ("format", "owner", "process", "rest")

    def __init__(self, process: Callable[[rtc.AudioFrame], None], owner: str) -> None:
        self.process = process
        self.owner = owner
        self.format: tuple[int, int] | None = None
        self.rest = np.zeros(0, np.int16)  # interleaved samples short of a whole 10 ms

    def push(self, frame: rtc.AudioFrame) -> tuple[rtc.AudioFrame, ...]:
        """``frame``'s whole 10 ms processed, as one frame (none while short of 10 ms).

        Raises:
            ValueError: A rate the module does not take, or a format change.
        """
        fmt = (frame.sample_rate, frame.num_channels)
        if self.format is None:
            if frame.sample_rate not in APM_RATES:
                raise ValueError(
                    f"{self.owner}: WebRTC's audio processing takes 8, 16, "
                    f"32 or 48 kHz audio, not {frame.sample_rate} Hz; put a Resample to "
                    "16 kHz (or 48) before it"
                )
            self.format = fmt
        elif fmt != self.format:
            raise ValueError(
                f"{self.owner}: got {fmt[0]} Hz x{fmt[1]} audio after "
                f"{self.format[0]} Hz x{self.format[1]}; one stream has one format"
            )
        rate, channels = fmt
        data = np.frombuffer(frame.data, np.int16)
        if self.rest.size:
            data = np.concatenate([self.rest, data])
        piece = rate // 100 * channels
        whole = data.size // piece * piece
        self.rest = data[whole:].copy()
        if whole == 0:
            return ()
        buffer = bytearray(data[:whole].tobytes())
        size = piece * 2
        for start in range(0, whole * 2, size):
            # The module changes a frame's own buffer in place (the SDK copies a view it is
            # given), so each piece is a frame of its own, copied back once processed.
            ten_ms = rtc.AudioFrame(buffer[start:start + size], rate, channels, rate // 100)
            self.process(ten_ms)
            buffer[start:start + size] = ten_ms.data.cast("B")
        return (rtc.AudioFrame(buffer, rate, channels, whole // channels),)
