"""capture_when_ready: a frame the SDK's audio source refuses while a capture is pending."""

import asyncio

import pytest
from livekit import rtc

from flowkit.livekit.audio import capture_when_ready

HUNDRED_MS = rtc.AudioFrame(b"\0\0" * 4800, 48_000, 1, 4800)


class Refusing:
    """An audio source that refuses the first ``refusals`` frames with ``error``."""

    def __init__(self, refusals: int, error: str = "an RtcError occurred: InvalidState - "
                 "failed to capture frame") -> None:
        self.refusals, self.error = refusals, error
        self.offered = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        self.offered += 1
        if self.offered <= self.refusals:
            raise Exception(self.error)


async def test_the_real_source_takes_the_next_frame_after_a_capture_cut_by_a_barge_in() -> None:
    source = rtc.AudioSource(48_000, 1, queue_size_ms=200)
    try:
        await source.capture_frame(HUNDRED_MS)
        await source.capture_frame(HUNDRED_MS)  # the queue is full: the next capture waits
        waiting = asyncio.ensure_future(source.capture_frame(HUNDRED_MS))
        await asyncio.sleep(0.005)
        waiting.cancel()  # the speaker stops mid-frame...
        source.clear_queue()  # ...and drops what was not heard
        # The next reply's first frame, at once: the SDK still has the cut capture pending.
        await asyncio.wait_for(capture_when_ready(source, HUNDRED_MS), timeout=5)
    finally:
        await source.aclose()


@pytest.mark.looptime
async def test_a_refused_frame_is_offered_again_every_10_ms() -> None:
    source = Refusing(3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await capture_when_ready(source, HUNDRED_MS)  # type: ignore[arg-type]
    assert source.offered == 4
    assert loop.time() - start == pytest.approx(0.03)


@pytest.mark.looptime
async def test_a_source_that_keeps_refusing_raises_after_a_second() -> None:
    source = Refusing(10_000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(Exception, match="InvalidState"):
        await capture_when_ready(source, HUNDRED_MS)  # type: ignore[arg-type]
    assert loop.time() - start == pytest.approx(1.0, abs=0.02)


@pytest.mark.looptime
async def test_another_error_is_raised_at_once() -> None:
    source = Refusing(1, error="an RtcError occurred: InvalidArgument - bad frame")
    with pytest.raises(Exception, match="InvalidArgument"):
        await capture_when_ready(source, HUNDRED_MS)  # type: ignore[arg-type]
    assert source.offered == 1
