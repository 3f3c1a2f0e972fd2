"""MemoryIO's queued output: LiveKit's playout queue, on the loop's clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc

from flowkit.audio import frame_from_samples
from flowkit.room_io import QueuedAudioOutput
from flowkit.testing.memory_io import MemoryAudioOutput, MemoryIO, QueuedMemoryAudioOutput

RATE = 1_000


def frame(start: int, ms: int = 100) -> rtc.AudioFrame:
    return frame_from_samples(np.arange(start, start + ms, dtype=np.int16), RATE)


async def test_only_a_queued_output_says_how_much_it_holds() -> None:
    assert isinstance(MemoryIO(paced=True, output_queue=0.2).audio_output(RATE, 1),
                      QueuedAudioOutput)
    plain = MemoryIO(paced=True).audio_output(RATE, 1)
    assert type(plain) is MemoryAudioOutput and not isinstance(plain, QueuedAudioOutput)


@pytest.mark.parametrize("kwargs", [{"output_queue": -0.1, "paced": True},
                                    {"output_queue": 0.2}])
def test_a_queue_needs_pacing_and_a_length(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="output_queue"):
        MemoryIO(**kwargs)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_writes_run_ahead_by_the_queue_and_clear_keeps_only_what_was_heard() -> None:
    io = MemoryIO(paced=True, output_queue=0.2)
    output = io.audio_output(RATE, 1)
    assert isinstance(output, QueuedMemoryAudioOutput)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    returned = []
    for i in range(6):
        await output.write(frame(i * 100))
        returned.append(loop.time() - t0)
    # The first two fit in the queue at once; then each waits for room.
    assert returned == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3, 0.4])
    assert output.queued_seconds == pytest.approx(0.2)
    assert [t - t0 for t, _ in io.played] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])

    await asyncio.sleep(0.05)
    output.clear()
    heard = np.concatenate([np.frombuffer(f.data, np.int16) for _, f in io.played])
    assert heard.tolist() == list(range(450))  # the frame at 0.4 cut at 0.45, 0.5 dropped
    assert output.queued_seconds == 0.0
    await output.write(frame(1000))
    assert io.played[-1][0] - t0 == pytest.approx(0.45)  # at once after a clear


@pytest.mark.looptime
async def test_a_write_that_has_not_returned_is_not_counted_as_queued() -> None:
    io = MemoryIO(paced=True, output_queue=0.2)
    output = io.audio_output(RATE, 1)
    for i in range(2):
        await output.write(frame(i * 100))
    writing = asyncio.ensure_future(output.write(frame(200)))
    await asyncio.sleep(0.01)
    assert not writing.done()
    # As LiveKit's source: the caller holds that frame as unwritten and writes it again.
    assert output.queued_seconds == pytest.approx(0.19)
    writing.cancel()
