"""A turn enriched before the LLM answers it: ``UserTurn.context`` and ``reply=False``.

LiveKit Agents' ``on_user_turn_completed``: a node between the turn detector and the LLM
looks something up for the turn (retrieval) and sends it on with notes, or keeps it
unanswered.
"""

import asyncio
import dataclasses

import pytest
from support import Collect, Script, collected

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.testing import FakeLLM

SPECIAL = "Today's special: lentil soup, 9 euros."


@fk.node
async def retrieve(turn: fk.UserTurn) -> fk.UserTurn:
    """A stand-in retrieval step: 200 ms to look the turn up."""
    await asyncio.sleep(0.2)
    if "menu" in turn.text:
        return dataclasses.replace(turn, context=(SPECIAL,))
    if turn.text == "hold on":
        return dataclasses.replace(turn, reply=False)
    return turn


def _turn(text: str) -> fk.UserTurn:
    return fk.UserTurn(turn_id=fk.new_turn_id(), text=text)


@pytest.mark.looptime
async def test_a_turns_context_joins_the_history_before_its_words_and_stays() -> None:
    fake = FakeLLM(["The special is lentil soup.", "You are welcome."], ttft=0.0,
                   token_gap=0.0)
    llm = LLM(fake, instructions="You are a waiter.")
    g = fk.Graph("rag")
    turns = Script((0, _turn("what's on the menu?")), (2.0, _turn("hold on")),
                   (4.0, _turn("thanks")))
    g.add(turns, name="turns") >> g.add(retrieve(), name="retrieve") >> g.add(llm, name="llm")
    text = g.add(Collect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()

    first = [(m.role, m.content) for m in fake.requests[0].history]
    assert first == [
        ("system", "You are a waiter."),
        ("assistant", f"Information relevant to the user's next message:\n\n{SPECIAL}"),
        ("user", "what's on the menu?"),
    ]
    # "hold on" was not answered: two requests for three turns; it is in the history, and
    # the note is still there for the later turn.
    assert len(fake.requests) == 2
    later = [(m.role, m.content) for m in fake.requests[1].history]
    assert later[1:] == [
        *first[1:], ("assistant", "The special is lentil soup."), ("user", "hold on"),
        ("user", "thanks"),
    ]
    assert "".join(c.text for c in collected(text)) == (
        "The special is lentil soup.You are welcome."
    )


@pytest.mark.looptime
async def test_a_turn_that_is_not_answered_still_cuts_the_reply_under_way() -> None:
    fake = FakeLLM(["One two three four five six seven eight nine ten."], ttft=0.0,
                   token_gap=0.5)
    llm = LLM(fake, instructions="Count.")
    g = fk.Graph("no-reply")
    count = _turn("count")
    quiet = dataclasses.replace(_turn("hold on"), reply=False)  # a newer turn id
    g.add(Script((0, count), (1.2, quiet)), name="turns") >> g.add(llm, name="llm")
    text = g.add(Collect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()
    assert len(fake.requests) == 1 and fake.requests[0].cancelled
    messages = [(m.role, m.content, m.interrupted) for m in llm.history.messages]
    assert messages[-2][0] == "assistant" and messages[-2][2]  # cut where it was
    assert messages[-1] == ("user", "hold on", False)


def _note(*context: str) -> str:
    return fk.UserTurn(text="x", context=context).context_note()


def test_blank_notes_make_no_message() -> None:
    assert _note() == "" and _note("  ", "") == ""
    assert _note("a", " b ") == "Information relevant to the user's next message:\n\na\n\nb"


@pytest.mark.looptime
async def test_a_request_started_before_the_context_came_is_not_used() -> None:
    fake = FakeLLM(["Without the note.", "With the note."], ttft=0.3, token_gap=0.01)
    llm = LLM(fake, instructions="Be brief.")
    g = fk.Graph("preemptive-context")
    turn = dataclasses.replace(_turn("what's on the menu?"), context=(SPECIAL,))
    g.add(Script((0.5, turn)), name="turns") >> g.add(llm, name="llm")
    tentative = fk.TentativeTurn(text="what's on the menu?")
    g.add(Script((0.0, tentative)), name="tentative") >> llm.tentative
    text = g.add(Collect(), name="text")
    llm >> text
    await fk.GraphRunner(g).run()
    # The early request was made from a history without the note: its answer is dropped
    # and a new request, with the note, answers the turn.
    assert len(fake.requests) == 2
    assert [m.role for m in fake.requests[0].history] == ["system", "user"]
    assert fake.requests[1].history[1].content == _note(SPECIAL)
    assert "".join(c.text for c in collected(text)) == "With the note."
