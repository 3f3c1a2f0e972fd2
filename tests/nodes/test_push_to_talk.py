"""PushToTalk: the audio passes while the button is held; presses flush, clear and commit."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from livekit import rtc
from support import Collect, Script, TimedCollect, collected

import flowkit as fk
from flowkit.audio import frame_from_samples
from flowkit.nodes.push_to_talk import PushToTalk

RATE = 16_000


def tone(n: int) -> list[rtc.AudioFrame]:
    pcm = np.full(320, 1000, dtype=np.int16)
    return [frame_from_samples(pcm.copy(), RATE) for _ in range(n)]


@pytest.mark.looptime
async def test_presses_open_the_gate_flush_clear_and_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit")
    g = fk.Graph("button")
    button = g.add(PushToTalk(), name="button")
    # 20 ms frames for 2 s; pressed at 0.5, pressed again (ignored), let go at 1.0; a bad
    # press; pressed at 1.5 and cancelled at 1.8.
    g.add(Script(*[(k * 0.02, frame) for k, frame in enumerate(tone(100))])) >> button.audio
    g.add(Script((0.5, "start"), (0.6, "start"), (1.0, "end"), (1.1, "press"), (1.2, "end"),
                 (1.5, "start"), (1.8, "cancel"), end_at=2.5)) >> button.presses
    heard = g.add(TimedCollect(), name="heard")
    button.out >> heard
    commits, clears = g.add(Collect(), name="commits"), g.add(Collect(), name="clears")
    interrupts = g.add(Collect(), name="interrupts")
    button.commit >> commits
    button.clear >> clears
    button.interrupts >> interrupts
    runner = fk.GraphRunner(g)
    await runner.run()
    assert runner.node_errors == []

    def loud(at: float) -> bool:
        return any(frame.data[0] != 0 for t, frame in heard.items if abs(t - at) < 0.011)

    assert len(heard.items) == 100  # a frame out for every frame in: silence when up
    assert [loud(t) for t in (0.2, 0.7, 0.9, 1.3, 1.6, 1.9)] == [
        False, True, True, False, True, False]
    assert collected(commits) == ["end"]  # the second release came with the button up
    assert collected(clears) == ["start", "start", "cancel"]
    assert [(i.action, i.force, i.reason) for i in collected(interrupts)] == [
        (fk.InterruptAction.FLUSH, False, "push_to_talk")] * 2
    assert "unknown action 'press'; send one of 'start', 'end', 'cancel'" in caplog.text


@pytest.mark.looptime
async def test_with_nothing_to_press_it_the_button_stays_down() -> None:
    g = fk.Graph("no button")
    button = g.add(PushToTalk(), name="button")
    g.add(Script(*[(k * 0.02, frame) for k, frame in enumerate(tone(10))])) >> button.audio
    heard = g.add(Collect(), name="heard")
    button.out >> heard
    await fk.GraphRunner(g).run()
    assert all(frame.data[0] != 0 for frame in collected(heard)) and len(collected(heard)) == 10


def test_the_three_methods_must_have_different_names() -> None:
    with pytest.raises(fk.NodeParamsError, match="give three different names"):
        PushToTalk(start_method="talk", end_method="talk")
