"""A push-to-talk button: the user is heard while they hold it, and letting go ends their turn.

LiveKit Agents' push-to-talk recipe, as a node. The client calls three RPC methods on the
agent: ``start_turn`` when the button goes down, ``end_turn`` when it comes up, and
``cancel_turn`` to throw away what was said. :class:`PushToTalk` registers them with the
room I/O (:class:`~flowkit.room_io.RpcMethods`; a LiveKit room) and, between the
microphone and the rest of the pipeline:

- passes the user's audio on while the button is held, and silence of the same format
  otherwise (the VAD then hears the speech end, and the recogniser gets its last words;
  nothing said with the button up reaches the turn);
- on a press, flushes the agent's reply (not one that may not be interrupted: ``force`` is
  off, as typed text and key presses flush) and clears the turn detector's pending turn;
- on a release, commits the turn (the detector waits for the last words' transcript, see
  :mod:`flowkit.nodes.turn`); on a cancel, clears it.

Link it to a :class:`~flowkit.nodes.turn.TurnDetector` in ``"manual"`` mode::

    mic >> ptt >> Resample(16_000) >> vad >> stt >> turns     # turns = TurnDetector("manual")
    ptt.commit >> turns.commit
    ptt.clear >> turns.clear
    ptt.interrupts >> [llm.interrupt, tts.interrupt, speaker.interrupt]

With a speech-to-speech model instead (flowkit-openai's ``RealtimeModel(turn_detection=None)``),
link the same three outputs to its ``commit``, ``clear`` and ``interrupt``.

Presses can also come on the ``presses`` input (``"start"``, ``"end"``, ``"cancel"``): a
keyboard, a test. The button starts up when something can press it (the room has RPC
methods, or ``presses`` is linked), so nothing is heard before the first press; with
neither (an offline run from a file), it is held for good and the audio passes as it is.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from typing import Literal

import pydantic
from livekit import rtc

from flowkit.messages import Interrupt, InterruptAction
from flowkit.node import Node, NodeParams
from flowkit.ports import In, Out
from flowkit.room_io import RpcMethods
from flowkit.runtime.queues import for_each

__all__ = ["PushToTalk", "PushToTalkAction"]

PushToTalkAction = Literal["start", "end", "cancel"]
"""What happens to the button: pressed, let go, or let go to throw the turn away."""

_ACTIONS: tuple[PushToTalkAction, ...] = ("start", "end", "cancel")


class PushToTalk(Node):
    """The talk button: the user's audio while it is held, silence otherwise; it ends turns."""

    audio: In[rtc.AudioFrame] = In(default=True, doc="the user's audio (the microphone)")
    presses: In[str] = In(
        required=False, doc="'start', 'end' or 'cancel', besides the room's RPC calls"
    )
    out: Out[rtc.AudioFrame] = Out(
        default=True, doc="the audio while the button is held, silence of its format otherwise"
    )
    commit: Out[str] = Out(doc="one message per release: link to a TurnDetector's commit")
    clear: Out[str] = Out(
        doc="one message per press and per cancel: link to a TurnDetector's clear"
    )
    interrupts: Out[Interrupt] = Out(doc="a press flushes the agent's reply")

    class Params(NodeParams):
        """Parameters of :class:`PushToTalk`."""

        start_method: str = pydantic.Field("start_turn", min_length=1)
        end_method: str = pydantic.Field("end_turn", min_length=1)
        cancel_method: str = pydantic.Field("cancel_turn", min_length=1)

        @pydantic.model_validator(mode="after")
        def _distinct(self) -> PushToTalk.Params:
            names = (self.start_method, self.end_method, self.cancel_method)
            if len(set(names)) < 3:
                raise ValueError(
                    f"start_method, end_method and cancel_method are {names!r}: one RPC method "
                    "cannot both press and let go of the button; give three different names"
                )
            return self

    def __init__(
        self,
        *,
        start_method: str = "start_turn",
        end_method: str = "end_turn",
        cancel_method: str = "cancel_turn",
    ) -> None:
        """Create the button.

        Args:
            start_method: The RPC method a client calls when the button goes down.
            end_method: The RPC method for the button coming up: the turn is committed.
            cancel_method: The RPC method that throws the turn away.

        Raises:
            NodeParamsError: A name is empty, or two of them are the same.
        """
        super().__init__(
            start_method=start_method, end_method=end_method, cancel_method=cancel_method
        )
        self.held = False
        self._silence: dict[tuple[int, int, int], rtc.AudioFrame] = {}

    def press(self, action: str, caller: str = "") -> None:
        """Apply ``action`` (``"start"``, ``"end"`` or ``"cancel"``) to the button.

        A press while held, or a release or cancel while up, changes nothing (a client
        that sends one twice, or lets go before it pressed).

        Raises:
            ValueError: ``action`` is none of the three.
        """
        if action not in _ACTIONS:
            raise ValueError(
                f"PushToTalk {self.name!r}: unknown action {action!r}; send one of "
                f"{', '.join(repr(a) for a in _ACTIONS)}"
            )
        who = f" from {caller!r}" if caller else ""
        if (action == "start") == self.held:
            self.ctx.logger.debug("push to talk: %s%s ignored (held: %s)", action, who, self.held)
            return
        self.ctx.logger.debug("push to talk: %s%s", action, who)
        self.held = action == "start"
        if action == "start":
            # The user takes the floor: the agent stops (unless its reply is protected), and
            # whatever the detector kept from before is not part of this turn.
            self.interrupts.send(Interrupt(
                turn_id=0, action=InterruptAction.FLUSH, reason="push_to_talk", force=False
            ))
            self.clear.send(action)
        elif action == "end":
            self.commit.send(action)
        else:
            self.clear.send(action)

    async def run(self, audio: AsyncIterator[rtc.AudioFrame], presses: AsyncIterator[str]) -> None:
        """Gate the audio until it ends; answer the room's RPC calls meanwhile."""
        p = typing.cast(PushToTalk.Params, self.params)
        io = getattr(self.ctx.job, "io", None)
        rpc: RpcMethods | None = io if isinstance(io, RpcMethods) else None
        methods: dict[str, PushToTalkAction] = {
            p.start_method: "start", p.end_method: "end", p.cancel_method: "cancel"
        }
        # Up when something can press it; held for good when nothing can.
        self.held = rpc is None and not self.ctx.input_linked("presses")
        if rpc is not None:
            for method, action in methods.items():
                rpc.register_rpc(method, self._answer(action))
        reading = self.ctx.create_task(self._read_presses(presses), name="presses")
        try:
            await for_each(audio, self._gate)
        finally:
            reading.cancel()
            if rpc is not None:
                for method in methods:
                    rpc.unregister_rpc(method)

    def _answer(self, action: PushToTalkAction) -> typing.Callable[[rtc.RpcInvocationData], str]:
        def answer(call: rtc.RpcInvocationData) -> str:
            self.press(action, call.caller_identity)
            return ""

        return answer

    async def _read_presses(self, presses: AsyncIterator[str]) -> None:
        async for action in presses:
            try:
                self.press(action)
            except ValueError as exc:
                self.ctx.logger.warning("%s", exc)  # a bad press loses nothing else

    def _gate(self, frame: rtc.AudioFrame) -> None:
        if self.held:
            self.out.send(frame)
            return
        shape = (frame.sample_rate, frame.num_channels, frame.samples_per_channel)
        silent = self._silence.get(shape)
        if silent is None:
            # One per format, sent again and again: no node changes a frame it is given.
            silent = rtc.AudioFrame(
                bytes(2 * shape[1] * shape[2]), shape[0], shape[1], shape[2]
            )
            self._silence[shape] = silent
        self.out.send(silent)
