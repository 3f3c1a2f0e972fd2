"""Telephone keypad input: DTMF presses from the room, as digits and as user turns.

A caller on a SIP line who presses keys sends DTMF; in a LiveKit room each press is a data
packet, and :class:`DTMFInput` reads them through the job's room I/O
(:class:`~flowkit.room_io.DTMFInputSource`). It sends

- every press on ``digits`` (a :class:`~flowkit.messages.DTMFDigit`), for nodes that act on
  single keys ("press 1 for sales");
- the presses of one entry (an account number, a PIN) as one committed
  :class:`~flowkit.messages.UserTurn` on ``turns``, for the LLM. An entry ends with the
  terminator key (``#`` by default, left out of the turn), after ``timeout`` seconds without
  a press, at ``max_digits`` keys, or when the input ends. A terminator with no keys before
  it commits nothing. Each participant's presses make an entry of their own;
- a flush :class:`~flowkit.messages.Interrupt` on ``interrupts`` at every press. Link it to
  the sink, TTS and LLM ``interrupt`` inputs and a key press stops the agent's speech at
  once, as keypad barge-in does in a phone menu: a caller who presses keys has heard
  enough, and the turn their keys make comes only at the end of the entry. Leave it unlinked
  and the agent talks on until the turn commits. The flush is not forced: a reply that may
  not be interrupted (``ReplyRequest(allow_interruptions=False)``) plays to its end, as with
  :class:`~flowkit.nodes.room_state.ChatInput`.

The turn's text is ``template`` with ``{digits}`` replaced by the keys separated by spaces:
``<dtmf>1 2 3 4</dtmf>`` by default. The tag tells the LLM the user pressed keys rather than
spoke (LiveKit Agents' ``GetDtmfTask`` tags its keypad input too, as ``<dtmf_inputs>``; set
``template`` to match prompts written for it), and spaced digits are read as digits, not as
the number 1234, by the LLM and by a TTS reading them back.

An I/O without a keypad (an offline run) is not an error: the node then ends at once and
sends nothing, so the same graph runs everywhere.

This node hears keys; for the agent to press keys itself (through a company's phone menu),
give the LLM the :data:`flowkit.tools.dtmf.send_dtmf` tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pydantic

from flowkit.messages import (
    DTMF_DIGITS,
    DTMFDigit,
    Interrupt,
    InterruptAction,
    UserTurn,
    new_turn_id,
)
from flowkit.node import Node, NodeParams
from flowkit.nodes.room import room_io
from flowkit.policy import ErrorPolicy
from flowkit.ports import Out
from flowkit.room_io import DTMFInputSource

__all__ = ["DTMFInput"]


class DTMFInput(Node):
    """Keypad presses from the room, each on ``digits`` and collected into user turns."""

    turns: Out[UserTurn] = Out(default=True, doc="one committed turn per entry of keys")
    digits: Out[DTMFDigit] = Out(doc="every key press, as it arrives")
    interrupts: Out[Interrupt] = Out(doc="flush the reply being spoken, at every press")
    error_policy = ErrorPolicy.RESTART

    class Params(NodeParams):
        """Parameters of :class:`DTMFInput`."""

        terminator: str | None = pydantic.Field(
            default="#", description="the key that ends an entry; None: no such key"
        )
        timeout: float | None = pydantic.Field(
            default=5.0, gt=0.0, description="seconds without a press that end an entry"
        )
        max_digits: int | None = pydantic.Field(
            default=None, ge=1, description="keys that end an entry when reached"
        )
        participant: str | None = pydantic.Field(
            default=None, description="identity; None: the I/O's participant, or everyone"
        )
        template: str = pydantic.Field(
            default="<dtmf>{digits}</dtmf>", description="the turn's text"
        )

        @pydantic.field_validator("terminator")
        @classmethod
        def _a_key(cls, terminator: str | None) -> str | None:
            if terminator is not None and (len(terminator) != 1 or terminator not in DTMF_DIGITS):
                raise ValueError(
                    f"{terminator!r} is not a keypad key; give one of {DTMF_DIGITS!r} "
                    "(usually '#'), or None for entries ended by timeout or max_digits only"
                )
            return terminator

        @pydantic.field_validator("template")
        @classmethod
        def _has_digits(cls, template: str) -> str:
            try:
                text = template.format(digits="\0")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"the template {template!r} cannot be filled ({type(exc).__name__}: "
                    f"{exc}); use {{digits}} as its only placeholder and double any other "
                    "brace ({{ or }})"
                ) from None
            if "\0" not in text:
                raise ValueError(
                    f"the template {template!r} has no {{digits}} placeholder, so the turn "
                    "would not say which keys were pressed; put {digits} where they go"
                )
            return template

        @pydantic.model_validator(mode="after")
        def _ends(self) -> DTMFInput.Params:
            if self.terminator is None and self.timeout is None and self.max_digits is None:
                raise ValueError(
                    "with terminator, timeout and max_digits all None an entry never ends, "
                    "so no turn would ever be committed; set at least one of them"
                )
            return self

    def __init__(
        self,
        *,
        terminator: str | None = "#",
        timeout: float | None = 5.0,
        max_digits: int | None = None,
        participant: str | None = None,
        template: str = "<dtmf>{digits}</dtmf>",
    ) -> None:
        """Create a keypad input.

        Args:
            terminator: The key that ends an entry (left out of the turn); ``None``: every
                key is part of the entry.
            timeout: Seconds after a press with no other press that end the entry (LiveKit
                Agents waits 5 s too); ``None``: entries end only by the terminator or
                ``max_digits``.
            max_digits: An entry ends when it has this many keys (``1`` for a menu choice,
                which then needs no terminator and no wait); ``None``: no limit.
            participant: Whose presses to hear; ``None``: the participant the I/O is bound
                to (a participant job's), or everyone's.
            template: The turn's text: ``{digits}`` is replaced by the keys, separated by
                spaces.

        Raises:
            NodeParamsError: A parameter is invalid (the message says which and why).
        """
        super().__init__(
            terminator=terminator,
            timeout=timeout,
            max_digits=max_digits,
            participant=participant,
            template=template,
        )

    async def run(self) -> None:
        """Read presses until the room closes (at once when the I/O has no keypad)."""
        params = self.params
        assert isinstance(params, DTMFInput.Params)
        io = room_io(self)
        if not isinstance(io, DTMFInputSource):
            self.ctx.logger.debug(
                "the room I/O (%s) has no keypad input; no DTMF turns", type(io).__name__
            )
            return
        entries = _Entries(params, self.turns.send)
        try:
            async for press in io.dtmf_input(params.participant):
                self.interrupts.send(
                    Interrupt(
                        turn_id=0, action=InterruptAction.FLUSH, reason="dtmf", force=False
                    )
                )
                self.digits.send(press)
                entries.press(press)
            # Nothing more can be pressed: waiting out the timeout would only lose the keys.
            entries.commit_all()
        finally:
            entries.close()


@dataclass(slots=True)
class _Entry:
    """The keys one participant has pressed since their last committed turn."""

    keys: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class _Entries:
    """Collects each participant's presses into entries and commits them as turns.

    Turns are sent synchronously (``send``), so the inter-digit timer can commit from a loop
    callback: a press is rare enough that a blocking turn queue downstream is never the
    question.
    """

    def __init__(self, params: DTMFInput.Params, send: Callable[[UserTurn], None]) -> None:
        self.params = params
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.open: dict[str, _Entry] = {}

    def press(self, press: DTMFDigit) -> None:
        who = press.participant
        entry = self.open.setdefault(who, _Entry())
        if press.digit == self.params.terminator:
            self.commit(who)
            return
        entry.keys.append(press.digit)
        max_digits = self.params.max_digits
        if max_digits is not None and len(entry.keys) >= max_digits:
            self.commit(who)
            return
        if self.params.timeout is not None:
            if entry.timer is not None:
                entry.timer.cancel()
            entry.timer = self.loop.call_later(self.params.timeout, self.commit, who)

    def commit(self, who: str) -> None:
        entry = self.open.pop(who, None)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        if not entry.keys:
            return  # a terminator alone: an empty entry is no turn
        text = self.params.template.format(digits=" ".join(entry.keys))
        self.send(UserTurn(turn_id=new_turn_id(), text=text, speaker=who))

    def commit_all(self) -> None:
        for who in list(self.open):
            self.commit(who)

    def close(self) -> None:
        for entry in self.open.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self.open.clear()
