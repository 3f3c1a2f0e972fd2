"""The LLM node's images input: the newest image goes with the next user message, once;
max_images bounds the history's images; a preemptive request carries the same image."""

from __future__ import annotations

from typing import Any

import pytest
from support import Collect, Script

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.providers.chat import ChatMessage
from flowkit.testing import FakeLLM


def _image(tag: str) -> fk.Image:
    return fk.Image(data=tag.encode(), width=4, height=3)


def _turn(text: str) -> fk.UserTurn:
    return fk.UserTurn(turn_id=fk.new_turn_id(), text=text)


def _shown(history: tuple[ChatMessage, ...]) -> list[tuple[str, list[bytes]]]:
    return [(m.content, [i.data for i in m.images]) for m in history if m.role == "user"]


async def _run(llm: LLM, **inputs: list[tuple[float, Any]]) -> None:
    g = fk.Graph("seeing")
    brain = g.add(llm, name="llm")
    for port, script in inputs.items():
        g.add(Script(*script), name=port) >> brain.inputs[port]
    brain >> g.add(Collect(), name="text")
    await fk.GraphRunner(g).run()


@pytest.mark.looptime
async def test_the_newest_image_goes_with_the_next_turn_and_only_once() -> None:
    fake = FakeLLM(["A cat.", "Still a cat.", "A dog."], ttft=0.1, token_gap=0.01)
    llm = LLM(fake, max_images=2)
    await _run(
        llm,
        turns=[(1.0, _turn("what is this?")), (3.0, _turn("and now?")), (5.0, _turn("now?"))],
        images=[(0.0, _image("old")), (0.5, _image("cat")), (4.0, _image("dog"))],
    )
    first, second, third = (request.history for request in fake.requests)
    # the newest image before each turn, and none when nothing new was seen since
    assert _shown(first) == [("what is this?", [b"cat"])]
    assert _shown(second)[-1] == ("and now?", [])
    assert _shown(third) == [("what is this?", [b"cat"]), ("and now?", []), ("now?", [b"dog"])]


@pytest.mark.looptime
async def test_only_the_newest_messages_keep_their_images() -> None:
    fake = FakeLLM(["One.", "Two.", "Three."], ttft=0.1, token_gap=0.01)
    llm = LLM(fake)  # max_images=1
    await _run(
        llm,
        turns=[(1.0, _turn("a")), (3.0, _turn("b")), (5.0, _turn("c"))],
        images=[(0.5, _image("1")), (2.5, _image("2"))],
    )
    assert _shown(fake.requests[1].history) == [("a", []), ("b", [b"2"])]
    # the third turn saw nothing new: the last image seen stays in the history
    assert _shown(fake.requests[2].history) == [("a", []), ("b", [b"2"]), ("c", [])]


@pytest.mark.looptime
async def test_a_preemptive_request_carries_the_image_and_is_taken_over() -> None:
    fake = FakeLLM(["A red ball."], ttft=0.1, token_gap=0.01)
    llm = LLM(fake)
    turn = _turn("what do I hold?")
    tentative = fk.TentativeTurn(turn_id=turn.turn_id, text=turn.text)
    await _run(
        llm,
        turns=[(1.0, turn)],
        tentative=[(0.6, tentative)],
        images=[(0.5, _image("ball"))],
    )
    [request] = fake.requests  # made at 0.6 s and taken over at the commit
    assert _shown(request.history) == [("what do I hold?", [b"ball"])]
    assert _shown(llm.history.messages) == [("what do I hold?", [b"ball"])]


def test_max_images_may_not_be_negative() -> None:
    with pytest.raises(fk.NodeParamsError, match="max_images"):
        LLM(FakeLLM(), max_images=-1)
