"""UserFloor: how long a reply of the agent's own waits for the user's turn."""

from __future__ import annotations

import asyncio

import pytest

from flowkit.nodes.user_floor import UserFloor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_floor_is_free_until_the_user_speaks_and_held_while_they_do() -> None:
    clock = Clock()
    floor = UserFloor(clock, settle=2.0)
    assert floor.hold() == 0.0
    floor.speaking()
    clock.now = 30.0
    assert floor.hold() is None  # however long they speak


def test_after_speech_without_a_turn_the_floor_frees_once_the_settle_time_has_passed() -> None:
    clock = Clock()
    floor = UserFloor(clock, settle=2.0)
    floor.speaking()
    clock.now = 1.0
    floor.quiet()
    clock.now = 2.5
    assert floor.hold() == pytest.approx(0.5)
    clock.now = 3.0
    assert floor.hold() == 0.0


def test_an_announced_turn_holds_the_floor_until_a_turn_is_taken() -> None:
    clock = Clock()
    floor = UserFloor(clock, settle=2.0)
    floor.speaking()
    floor.quiet()
    floor.announced()
    clock.now = 10.0  # the detector's long delay: its model says the sentence goes on
    assert floor.hold() is None
    floor.turn_taken()
    assert floor.hold() == 0.0


def test_speaking_again_withdraws_the_announcement_and_the_settle_time_starts_afresh() -> None:
    clock = Clock()
    floor = UserFloor(clock, settle=2.0)
    floor.speaking()
    floor.quiet()
    floor.announced()
    clock.now = 1.0
    floor.speaking()
    clock.now = 2.0
    floor.quiet()
    # No new announcement (the detector's max_tentative was reached): the settle time rules.
    clock.now = 3.0
    assert floor.hold() == pytest.approx(1.0)


def test_a_turn_taken_while_the_user_still_speaks_keeps_the_floor_held() -> None:
    floor = UserFloor(Clock())
    floor.speaking()
    floor.turn_taken()
    assert floor.hold() is None


async def test_release_frees_the_floor_and_wakes_whoever_waits() -> None:
    floor = UserFloor()
    floor.speaking()
    waiting = asyncio.create_task(floor.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    floor.release()
    await asyncio.wait_for(waiting, 1.0)
