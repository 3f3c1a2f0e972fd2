"""Warm transfer: the agent briefs a human agent on a call, then hands the caller to them.

What LiveKit Agents' ``WarmTransferTask`` does, for a flowkit job:

1. The caller is put on hold: the room I/O's audio input goes silent
   (:meth:`~flowkit.livekit.LiveKitRoomIO.set_on_hold`, so the agent hears nobody and starts
   no reply) and hold music plays on a track of its own (:class:`~flowkit.livekit.hold.HoldPlayer`).
2. The agent joins a private consultation room (the caller's room's name plus
   ``-human-agent``) as itself, runs a fresh graph there, which you build
   (:data:`ConsultationGraph`, from a :class:`Consultation`), and dials the human agent into
   that room through an outbound SIP trunk.
3. The consultation graph talks with the human agent: it tells them what the call is about
   (the ``summary`` the caller's agent gave) and answers their questions. Its LLM has three
   tools (:attr:`Consultation.tools`): ``connect_to_caller`` moves the human agent into the
   caller's room (``MoveParticipant``), ``decline_transfer`` and ``voicemail_detected`` end
   the transfer without them.
4. The consultation graph is closed, the agent leaves the consultation room, and the room
   is deleted. After a connection the caller and the human agent talk, and the agent stays
   in the caller's room deaf and silent (the input stays on hold) until one of them hangs
   up, when the room is deleted, which ends the call for the other and ends the job. After a
   failure the hold is taken off and the caller's agent hears why
   (:class:`WarmTransferError`), to tell the caller.

Use it from a tool of the caller's agent, :func:`warm_transfer_tool`, whose ``summary``
argument the caller's LLM writes for the human agent (LiveKit Agents passes the chat history
instead; a summary written by the model that held the conversation reads better on the phone
and needs no access to the history from a tool)::

    transfer = WarmTransfer("+15550100", consultation=build_consultation, sip_trunk_id="ST_x")
    llm = g.add(LLM(model, instructions=..., tools=[warm_transfer_tool(transfer)]))

``MoveParticipant`` is a LiveKit Cloud and Private Cloud feature; flowkit's test server has
it for SIP participants.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit import api, rtc
from numpy.typing import NDArray

from flowkit.job import JobContext
from flowkit.livekit.calls import add_sip_participant, delete_room, move_participant
from flowkit.livekit.hold import HoldPlayer, hold_music, load_hold_audio
from flowkit.livekit.job import connect_job
from flowkit.tools.context import RunContext
from flowkit.tools.errors import StopResponse, ToolError
from flowkit.tools.function_tool import FunctionTool, function_tool
from flowkit.tools.invoke import deadline_paused

if TYPE_CHECKING:
    from flowkit.graph import Graph
    from flowkit.livekit.job import LiveKitJob
    from flowkit.runtime.runner import GraphRunner

__all__ = [
    "CONSULTATION_INSTRUCTIONS",
    "TRANSFER_DESCRIPTION",
    "Consultation",
    "ConsultationGraph",
    "WarmTransfer",
    "WarmTransferError",
    "WarmTransferFailure",
    "WarmTransferResult",
    "warm_transfer_tool",
]

logger = logging.getLogger("flowkit.livekit")

CONSULTATION_INSTRUCTIONS = """\
You are an assistant calling a human agent for help with a caller you have been talking with. \
The caller is on hold. In this conversation the user is the human agent, not the caller.

What the call is about:
{summary}

When the human agent answers, tell them briefly why the caller called and what you know, \
then answer their questions. Once they agree to take the call, call connect_to_caller. If \
they cannot take it, call decline_transfer with their reason. If you reach a voicemail \
greeting, call voicemail_detected. Keep it short: this is a phone call."""
"""The consultation's default instructions; ``{summary}`` is the caller's agent's summary."""

TRANSFER_DESCRIPTION = (
    "Transfer the caller to a human agent: the caller is put on hold while you brief the "
    "human agent, who then takes the call. Call it when the caller asks for a person, or "
    "when you cannot help them yourself. Before calling it, tell the caller you are "
    "transferring them and that they will be on hold for a moment."
)
"""What the LLM is told the transfer tool does."""

_SUMMARY_DOC = (
    "What the human agent needs to know: who the caller is, what they want, and what "
    "has been said or done so far, in a few sentences"
)

DEFAULT_IDENTITY = "human-agent-sip"
"""The human agent's identity in both rooms, unless given (LiveKit's too)."""
_ROOM_SUFFIX = "-human-agent"
_USERS = (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP)


class WarmTransferFailure(enum.StrEnum):
    """Why a warm transfer did not connect the caller."""

    DIAL_FAILED = "dial_failed"
    """The human agent's line was busy, refused the call, or nobody answered."""
    DECLINED = "declined"
    """The human agent declined the call (``decline_transfer``)."""
    VOICEMAIL = "voicemail"
    """The call reached a voicemail (``voicemail_detected``)."""
    DESTINATION_LEFT = "destination_left"
    """The human agent hung up before taking the call."""
    CALLER_LEFT = "caller_left"
    """The caller hung up during the transfer; the human agent's call was ended too."""
    CONSULTATION_FAILED = "consultation_failed"
    """The consultation's graph failed or ended, or its room closed."""


class WarmTransferError(ToolError):
    """A warm transfer that did not connect the caller; ``code`` says why.

    A :class:`~flowkit.tools.ToolError`: raised through a tool, the LLM reads the message.

    Attributes:
        code: Why.
        reason: The human agent's reason, for ``DECLINED``.
        sip_status_code: The SIP status of a failed dial (``486`` busy, ...), else 0.
    """

    def __init__(
        self,
        message: str,
        *,
        code: WarmTransferFailure,
        reason: str = "",
        sip_status_code: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.sip_status_code = sip_status_code


@dataclass(frozen=True, slots=True)
class WarmTransferResult:
    """A warm transfer that connected the caller.

    Attributes:
        human_agent_identity: The human agent's identity, now in the caller's room.
        consultation_room: The room the agent briefed them in (deleted by now).
    """

    human_agent_identity: str
    consultation_room: str


@dataclass(frozen=True, slots=True)
class Consultation:
    """What a consultation graph is built from (see :data:`ConsultationGraph`).

    Attributes:
        job: The consultation's job: its room I/O is the consultation room's, its default
            participant the human agent (room nodes hear them), its usage the caller's job's.
        summary: What the caller's agent said the call is about.
        instructions: The consultation LLM's instructions (the summary in them).
        tools: ``connect_to_caller``, ``decline_transfer`` and ``voicemail_detected``: give
            them to the graph's LLM and tool router.
        human_agent_identity: The human agent's identity in the room.
    """

    job: JobContext
    summary: str
    instructions: str
    tools: tuple[FunctionTool, ...]
    human_agent_identity: str


ConsultationGraph = Callable[[Consultation], "Graph"]
"""Builds the graph that talks with the human agent: a voice agent graph (room source to
room sink) whose LLM has :attr:`Consultation.instructions` and :attr:`Consultation.tools`.
It is built and run once per transfer, on :attr:`Consultation.job`."""

HoldAudio = NDArray[np.int16] | str | os.PathLike[str] | bool
"""Hold music: samples (mono int16 at 48 kHz), a WAV file, ``True`` for
:func:`~flowkit.livekit.hold.hold_music`, ``False`` for none."""


class WarmTransfer:
    """How to transfer a call to a human agent (see the module).

    Args:
        sip_call_to: The human agent's number or SIP user.
        consultation: Builds the consultation graph.
        sip_trunk_id: The outbound trunk to dial through; ``LIVEKIT_SIP_OUTBOUND_TRUNK`` when
            empty.
        sip_number: The number to call from (one of the trunk's when empty).
        dtmf: Keys to press once the human agent's line answers (an extension: ``"1234#"``;
            ``w`` waits half a second).
        ringing_timeout: Seconds to let the line ring; ``None``: LiveKit's default.
        human_agent_identity: The human agent's identity in both rooms.
        hold_audio: What the caller hears on hold: samples, a WAV file, ``True`` for
            :func:`~flowkit.livekit.hold.hold_music`, ``False`` for silence.
        instructions: The consultation's instructions, with ``{summary}`` where the summary
            goes.

    Raises:
        ValueError: No number, no trunk (here or in the environment), instructions without
            ``{summary}``, or hold music that is not mono int16 samples.
    """

    def __init__(
        self,
        sip_call_to: str,
        *,
        consultation: ConsultationGraph,
        sip_trunk_id: str = "",
        sip_number: str = "",
        dtmf: str = "",
        ringing_timeout: float | None = None,
        human_agent_identity: str = DEFAULT_IDENTITY,
        hold_audio: HoldAudio = True,
        instructions: str = CONSULTATION_INSTRUCTIONS,
    ) -> None:
        if not sip_call_to:
            raise ValueError("WarmTransfer: sip_call_to is empty; give the human agent's number")
        trunk = sip_trunk_id or os.environ.get("LIVEKIT_SIP_OUTBOUND_TRUNK", "")
        if not trunk:
            raise ValueError(
                "WarmTransfer: no outbound trunk; give sip_trunk_id or set "
                "LIVEKIT_SIP_OUTBOUND_TRUNK to the id of the trunk that dials the human agent"
            )
        if "{summary}" not in instructions:
            raise ValueError(
                "WarmTransfer: the consultation's instructions have no {summary}; put it where "
                "the caller's agent's summary of the call goes"
            )
        self.sip_call_to = sip_call_to
        self.consultation = consultation
        self.sip_trunk_id = trunk
        self.sip_number = sip_number
        self.dtmf = dtmf
        self.ringing_timeout = ringing_timeout
        self.human_agent_identity = human_agent_identity
        self.instructions = instructions
        self.hold_audio: NDArray[np.int16] | None
        if isinstance(hold_audio, bool):
            self.hold_audio = hold_music() if hold_audio else None
        elif isinstance(hold_audio, np.ndarray):
            if hold_audio.dtype != np.int16 or hold_audio.ndim != 1:
                raise ValueError(
                    f"WarmTransfer: hold_audio is {hold_audio.dtype} of shape "
                    f"{hold_audio.shape}; give mono int16 samples at 48 kHz (or a WAV file)"
                )
            self.hold_audio = hold_audio
        else:
            self.hold_audio = load_hold_audio(hold_audio)

    async def run(self, job: JobContext, summary: str) -> WarmTransferResult:
        """Transfer ``job``'s caller to the human agent (see the module); the result.

        Args:
            job: The caller's job, joined to its room.
            summary: What the human agent is told the call is about.

        Raises:
            RuntimeError: ``job`` is not a LiveKit job joined to its room.
            WarmTransferError: The caller was not connected; ``code`` says why. The hold is
                off again and the consultation room gone.
        """
        lk = job.livekit
        if lk is None or not lk.room.isconnected():
            raise RuntimeError(
                f"job {job.job_id!r}: a warm transfer needs a LiveKit job in its room (connect "
                "it first); offline there is no call to transfer"
            )
        run = _TransferRun(self, job, lk, summary)
        return await run.run()


class _TransferRun:
    """One transfer: its rooms, its consultation graph, its outcome."""

    def __init__(self, spec: WarmTransfer, job: JobContext, lk: LiveKitJob, summary: str) -> None:
        self.spec = spec
        self.job, self.lk = job, lk
        self.summary = summary
        self.human = spec.human_agent_identity
        self.caller_room = lk.room.name
        self.room = self.caller_room + _ROOM_SUFFIX
        self.outcome: asyncio.Future[WarmTransferResult] = (
            asyncio.get_running_loop().create_future()
        )
        self.answered = False  # before, a line that fails leaves the room: the dial says why
        self.moving = False  # the human agent leaves the consultation room to the caller's
        self.consult_job: JobContext | None = None
        self.consult: LiveKitJob | None = None
        self.runner: GraphRunner | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    async def run(self) -> WarmTransferResult:
        hold = None
        if self.spec.hold_audio is not None:
            hold = HoldPlayer(self.lk.io, self.spec.hold_audio)
        self.lk.io.set_on_hold(True)
        if hold is not None:
            hold.start()
        self.lk.room.on("participant_disconnected", self._on_caller_room_left)
        logger.info("warm transfer of room %r: calling %s", self.caller_room, self.spec.sip_call_to)
        connected = False
        try:
            await self._consult()
            result = await self.outcome
            connected = True
        finally:
            self.lk.room.off("participant_disconnected", self._on_caller_room_left)
            await self._close_consultation()
            if hold is not None:
                await hold.stop()
            if not connected:  # the caller is back with the agent, once the music is off
                self.lk.io.set_on_hold(False)
        # The call is theirs now: the agent stays, deaf and silent, until one of them leaves.
        self.lk.room.on("participant_disconnected", self._hang_up_when_one_leaves)
        logger.info("warm transfer of room %r: %s took the call", self.caller_room, self.human)
        return result

    # --- the consultation

    async def _consult(self) -> None:
        from flowkit.runtime.runner import GraphRunner

        job = self.job
        consult_job = JobContext(
            job_id=f"{job.job_id}:consultation", room_name=self.room, metadata=job.metadata,
            agent_name=job.agent_name, extra=dict(job.extra), participant_identity=self.human,
            # The human agent leaving is a transfer failure of its own (DESTINATION_LEFT,
            # _on_consultation_left), not the end of a job.
            close_on_disconnect=False,
        )
        consult_job.usage = job.usage  # the consultation's models are the call's cost too
        self.consult_job = consult_job
        key, secret = self.lk.api_credentials
        try:
            self.consult = await connect_job(
                consult_job, url=self.lk.url, token=self.lk.token_for(self.room),
                api_key=key, api_secret=secret,
            )
        except rtc.ConnectError as exc:
            raise WarmTransferError(
                f"the agent could not join the consultation room {self.room!r}: {exc}",
                code=WarmTransferFailure.CONSULTATION_FAILED,
            ) from exc
        self.consult.room.on("participant_disconnected", self._on_consultation_left)
        consultation = Consultation(
            job=consult_job, summary=self.summary,
            instructions=self.spec.instructions.replace("{summary}", self.summary),
            tools=self._tools(), human_agent_identity=self.human,
        )
        try:
            graph = self.spec.consultation(consultation)
            self.runner = GraphRunner(graph, job=consult_job)
            await self.runner.start()
        except Exception as exc:
            raise WarmTransferError(
                f"the consultation graph could not start: {type(exc).__name__}: {exc}",
                code=WarmTransferFailure.CONSULTATION_FAILED,
            ) from exc
        self._watch(self.runner.wait(), "the consultation graph ended")
        self._watch(consult_job.wait_for_shutdown(), "the consultation room closed")
        dial = asyncio.get_running_loop().create_task(self._dial(), name="dial human agent")
        self.tasks.append(dial)

    async def _dial(self) -> None:
        assert self.consult is not None
        spec = self.spec
        try:
            await add_sip_participant(
                self.consult, spec.sip_call_to, trunk_id=spec.sip_trunk_id,
                participant_identity=self.human, participant_name="Human agent",
                wait_until_answered=True, ringing_timeout=spec.ringing_timeout,
                sip_number=spec.sip_number, dtmf=spec.dtmf,
            )
        except api.SipCallError as exc:
            self._fail(
                f"the human agent's line did not take the call: SIP {exc.sip_status_code} "
                f"{exc.sip_status}", WarmTransferFailure.DIAL_FAILED,
                sip_status_code=exc.sip_status_code or 0,
            )
        except api.TwirpError as exc:
            self._fail(
                f"the human agent could not be called: {exc.message}",
                WarmTransferFailure.DIAL_FAILED,
            )
        else:
            self.answered = True
            logger.info("warm transfer of room %r: %s answered", self.caller_room, self.human)

    def _watch(self, ending: Awaitable[object], why: str) -> None:
        async def watch() -> None:
            try:
                await ending
            except Exception as exc:
                self._fail(f"{why}: {type(exc).__name__}: {exc}",
                           WarmTransferFailure.CONSULTATION_FAILED)
            else:
                self._fail(why, WarmTransferFailure.CONSULTATION_FAILED)

        self.tasks.append(asyncio.get_running_loop().create_task(watch(), name=why))

    def _fail(
        self, message: str, code: WarmTransferFailure, *, reason: str = "",
        sip_status_code: int = 0,
    ) -> None:
        if not self.outcome.done():
            logger.info("warm transfer of room %r failed: %s", self.caller_room, message)
            self.outcome.set_exception(WarmTransferError(
                message, code=code, reason=reason, sip_status_code=sip_status_code
            ))

    def human_in_consultation(self) -> bool:
        """Whether the human agent is in the consultation room now."""
        return self.consult is not None and (
            self.human in self.consult.room.remote_participants
        )

    def _on_consultation_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.human and self.answered and not self.moving:
            status = participant.attributes.get("sip.callStatus", "")
            self._fail(
                "the human agent hung up before taking the call"
                + (f" (call status {status})" if status else ""),
                WarmTransferFailure.DESTINATION_LEFT,
            )

    def _on_caller_room_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind in _USERS and participant.identity != self.human:
            self._fail("the caller hung up during the transfer", WarmTransferFailure.CALLER_LEFT)

    def _hang_up_when_one_leaves(self, participant: rtc.RemoteParticipant) -> None:
        if participant.kind not in _USERS:
            return
        self.lk.room.off("participant_disconnected", self._hang_up_when_one_leaves)
        logger.info("%r left the transferred call: ending it", participant.identity)
        task = asyncio.get_running_loop().create_task(self._delete_caller_room())
        self.job.add_shutdown_callback(lambda: _finish(task))

    async def _delete_caller_room(self) -> None:
        try:
            await delete_room(self.lk)
        except api.TwirpError as exc:
            logger.warning("could not end the transferred call in %r: %s", self.caller_room, exc)

    async def _close_consultation(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.runner is not None:
            try:
                await self.runner.close()
            except Exception:
                logger.exception("closing the consultation graph raised")
        if self.consult is not None:
            self.consult.room.off("participant_disconnected", self._on_consultation_left)
        if self.consult_job is not None:
            # Its shutdown callbacks (the graph's nodes may have some), then leave its room.
            await self.consult_job.aclose("the warm transfer ended")
        # Deleting the room hangs up a human agent still in it (after a failure, or a call
        # still ringing); after a connection it is empty. Gone already is fine.
        try:
            await self.lk.api.room.delete_room(api.DeleteRoomRequest(room=self.room))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                logger.warning("could not delete the consultation room %r: %s", self.room, exc)

    # --- the consultation's tools

    def _tools(self) -> tuple[FunctionTool, ...]:
        run = self

        async def connect_to_caller(ctx: RunContext) -> None:
            """Connect the human agent to the caller: call it once they agree to take the call."""
            if run.outcome.done():
                raise ToolError("the transfer is already over; there is no caller to connect")
            run.moving = True
            try:
                await move_participant(run.lk, run.human, from_room=run.room)
            except api.TwirpError as exc:
                run.moving = False
                if not run.human_in_consultation():
                    # They hung up during the move, which is why it failed; their leaving
                    # was not counted then (a move looks the same from this room).
                    run._fail("the human agent hung up before taking the call",
                              WarmTransferFailure.DESTINATION_LEFT)
                    raise StopResponse() from None
                raise ToolError(
                    f"could not connect the human agent to the caller: {exc.message}; tell "
                    "them, and try again or decline the transfer"
                ) from None
            if not run.outcome.done():
                run.outcome.set_result(WarmTransferResult(run.human, run.room))
            raise StopResponse()

        async def decline_transfer(ctx: RunContext, reason: str) -> None:
            """The human agent cannot take the call.

            Args:
                ctx: The call's context.
                reason: Why, in a few words, as the human agent said it.
            """
            run._fail(f"the human agent declined the call: {reason}",
                      WarmTransferFailure.DECLINED, reason=reason)
            raise StopResponse()

        async def voicemail_detected(ctx: RunContext) -> None:
            """The call reached a voicemail greeting: call it after you hear one."""
            run._fail("the human agent's line went to voicemail", WarmTransferFailure.VOICEMAIL)
            raise StopResponse()

        return tuple(function_tool(f) for f in (connect_to_caller, decline_transfer,
                                                 voicemail_detected))


async def _finish(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await task


def warm_transfer_tool(
    transfer: WarmTransfer,
    *,
    name: str = "transfer_to_human",
    description: str = TRANSFER_DESCRIPTION,
) -> FunctionTool:
    """A tool that runs ``transfer`` when the caller's LLM calls it.

    The LLM gives a ``summary`` for the human agent. The tool's timeout is stopped while the
    transfer runs (the human agent may take minutes). After a connection the LLM does not
    reply (the call is the human agent's); after a failure it reads why, to tell the caller.

    Args:
        transfer: What to do.
        name: The tool's name.
        description: What the LLM is told the tool does.

    Raises:
        ToolDefinitionError: ``name`` is not a valid tool name.
    """

    async def transfer_to_human(ctx: RunContext, summary: str) -> None:
        job = ctx.job
        if job is None or job.livekit is None:
            raise ToolError(
                "there is no phone call to transfer here (the agent does not run in a LiveKit "
                "room); tell the user a transfer is not possible now"
            )
        with deadline_paused():
            try:
                await transfer.run(job, summary)
            except WarmTransferError as exc:
                raise ToolError(
                    f"the transfer did not happen: {exc}. The caller is back with you: tell "
                    "them, and offer to try again later or to help otherwise."
                ) from None
        raise StopResponse()

    transfer_to_human.__doc__ = f"""Transfer the call.

        Args:
            summary: {_SUMMARY_DOC}.
        """
    return function_tool(name=name, description=description)(transfer_to_human)
