"""Server events in, flowkit messages out: the realtime session's state machine.

:class:`Dialogue` reads the Realtime API's server events and the node's inputs (tool
results, playout reports, flushes, reply requests) and acts through :class:`Effects`, which
the node implements: client events to send, audio to play, transcripts, tool calls,
interrupts, metrics, the agent's and the user's states. It owns no task and no socket, so a
connection can come and go under it, and everything it decides happens in the call that
delivered the event.

The mapping, event by event:

* ``input_audio_buffer.speech_started``: a new user turn (``turn_id``), the user
  ``speaking``; with the turn detection's ``interrupt_response``, a barge-in: every reply
  still playing or being made is cut, and an ``Interrupt(FLUSH)`` of its turn goes out for
  the sink. ``speech_stopped``: the user ``listening``.
* ``conversation.item.input_audio_transcription.delta`` / ``.completed``: the user's
  transcript, interim then final.
* ``response.created``: a reply starts, or goes on (the response the node asked for after
  a tool round, recognised by the ``flowkit_turn`` metadata it sent).
* ``response.output_audio.delta``: 20 ms :class:`~flowkit.messages.AgentAudio` frames at
  24 kHz (``segment`` is the item's place in the reply); ``response.output_audio_transcript``
  events: the item's transcript.
* ``response.output_text.delta`` / ``.done`` (a text-only session): the item's text, sent
  on as it streams (interim agent transcripts); no audio, so no end marker either. With the
  ``text`` output linked to a TTS node (``voiced``), the text goes there instead, as
  :class:`~flowkit.messages.TextChunk` s (:mod:`.voiced_text`), and the reply is then
  followed, cut and published as one the model spoke itself (:mod:`.listening`).
* ``conversation.item.added`` of a reply's message item: where it sits (the item before
  it), so that a voiced reply cut short can be put back in its place with the words heard.
* ``response.output_item.done`` of a ``function_call``: a :class:`~flowkit.messages.ToolCall`.
* ``response.done``: the reply's end marker, or, when the response called tools, a wait
  for the results (voiced, the TTS node is first told to speak the reply's text so far:
  :meth:`.VoicedText.flush`), then ``function_call_output`` items and ``response.create``.
* ``error``: a log line that says what was refused and what to do (:mod:`.server_errors`).

What the agent sees (the node's ``images``, an ``ImageEncoder``'s) goes with the user's next
turn, as the LLM node shows it: the newest image not yet shown is sent as a user message
with one ``input_image`` part (a data URL) when the server hears the user start speaking,
before a commit the graph makes, and before a request's ``user_text``. The images are not
in the text history a new connection replays.

A ``UserTurn`` the graph makes (a ``ChatInput``'s typed message, a ``DTMFInput``'s entry)
goes to the server as a user text message (its ``context`` notes before it, as an assistant
message), and a response is asked for under the turn's id, unless ``reply=False``.

A ``ReplyRequest`` asks for a response (``instructions``, ``user_text``), or, with ``say``,
has the TTS node speak a text as written (:mod:`.say`; voiced sessions only). While a reply
said with ``allow_interruptions=False`` plays, the user's audio, commits and requests wait
(:mod:`.held_input`), as they do once a tool's ``ctx.disallow_interruptions()`` protected
the reply that called it. A ``ToolSpeech`` (a tool's ``ctx.say``) is spoken by the TTS node
in the reply waiting for that tool, after the response that called it (:mod:`.tool_speech`;
voiced sessions only).

A result of a tool that went on in the background (``ToolResult(deferred=True)``: a later
``ctx.update`` or the tool's outcome, :mod:`flowkit.nodes.tool_background`) waits until the
agent is idle: no response under way or queued, nothing held, no reply still being heard.
Then the call and its output go to the server as items, several held results together, and
one response is asked for. A user turn that starts meanwhile (the server hears speech, or
the graph sends a turn) takes them: their items go to the server first, and the answer to
the user's turn is made with them in the conversation, with no response of their own.

What the listener heard (barge-ins, playout reports, truncation, the agent's transcript) is
:mod:`.listening`'s; tool rounds are :mod:`.tool_rounds`'; the agent's state, derived again
after every event and input, is :mod:`.states`'.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowkit.messages import (
    AgentAudio,
    Image,
    Interrupt,
    InterruptAction,
    Metrics,
    Playout,
    ReplyRequest,
    ToolResult,
    ToolSpeech,
    Transcript,
    UserTurn,
    new_turn_id,
)
from flowkit_openai.realtime.conversation import History, HistoryEntry, Reply, SpokenItem
from flowkit_openai.realtime.effects import Effects
from flowkit_openai.realtime.events import Event, EventHandlers
from flowkit_openai.realtime.held_input import HeldInput
from flowkit_openai.realtime.listening import Listening
from flowkit_openai.realtime.options import SAMPLE_RATE
from flowkit_openai.realtime.say import SaidReplies
from flowkit_openai.realtime.server_errors import describe_error, describe_failed_response
from flowkit_openai.realtime.states import ConversationStates
from flowkit_openai.realtime.tool_rounds import ToolRounds
from flowkit_openai.realtime.tool_speech import ToolSpeaker
from flowkit_openai.realtime.voiced_text import VoicedText

__all__ = ["TURN_KEY", "Dialogue"]

TURN_KEY = "flowkit_turn"
"""The response metadata key that names the reply a requested response belongs to."""


@dataclass(slots=True)
class _UserItem:
    turn_id: int
    entry: HistoryEntry
    parts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Timing:
    created: float
    first_audio: float | None = None
    first_text: float | None = None  # a text-only session's first text


class Dialogue:
    """The state machine of one realtime conversation (see the module).

    Args:
        effects: Where its decisions go.
        url: The endpoint, for log messages.
        clock: The loop's clock, in seconds.
        call_later: Schedules a callback (the tool results' timeout).
        logger: The node's logger.
        interrupt_response: User speech cuts the agent's reply (the turn detection's flag).
        max_tool_steps: Tool rounds per reply; the response after the last one may not
            call tools.
        tool_result_timeout: Seconds to wait for a round's results before answering the
            model with an error for each missing one.
        voiced: A TTS node speaks the text replies (the node's ``text`` output is linked,
            in a text-only session).
        user_away_timeout: Seconds of both sides listening before the user is ``away``;
            ``None`` never says so.

    Attributes:
        history: The conversation's text, for a new connection.
        listening: The listener's side of the replies.
        tools: The replies' tool rounds.
        tool_speech: What tools say, spoken in the replies waiting for them.
        states: The agent's and the user's states.
        held: The user's input held while a reply that may not be cut plays.
        session_confirmed: The server sent ``session.updated`` on this connection.
    """

    def __init__(
        self,
        effects: Effects,
        *,
        url: str,
        clock: Callable[[], float],
        call_later: Callable[[float, Callable[[], None]], Any],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        interrupt_response: bool = True,
        max_tool_steps: int = 3,
        tool_result_timeout: float = 60.0,
        voiced: bool = False,
        user_away_timeout: float | None = None,
    ) -> None:
        self.effects, self.url, self.clock, self.log = effects, url, clock, logger
        self.voicing = VoicedText(effects.speak_text) if voiced else None
        self.interrupt_response = interrupt_response
        self.session_confirmed = False
        self.history = History()
        self.listening = Listening(effects, send=self.send, clock=clock,
                                   end_reply=self.end_reply)
        self.tools = ToolRounds(
            effects, send=self.send, call_later=call_later,
            create_response=self.create_response, end_reply=self.end_reply,
            max_tool_steps=max_tool_steps, tool_result_timeout=tool_result_timeout,
        )
        self._by_response: dict[str, Reply] = {}
        self._timings: dict[str, _Timing] = {}
        self._users: dict[str, _UserItem] = {}
        self._active: str | None = None  # the response being generated
        self._queued: deque[dict[str, Any]] = deque()  # response.create waiting for it
        # Replies whose response.create was sent and whose response has not started; for a
        # server that does not echo response metadata (none seen yet), the next response
        # is taken to be the oldest of them.
        self._requested: deque[int] = deque()
        # Replies asked for whose response had not started when a say replaced them.
        self._superseded: set[int] = set()
        self._echoes = False
        self._creates: dict[str, int] = {}  # event id of a response.create -> its reply
        self._sent: OrderedDict[str, str] = OrderedDict()  # event id -> type, for errors
        self._ids = itertools.count(1)
        self._speech_stopped_at: float | None = None
        self._unseen_image: Image | None = None
        # Results of tools in the background, held until the agent is idle.
        self._deferred: list[ToolResult] = []
        self._call_later = call_later
        self._deliver_timer = False  # a clock check of the held results is scheduled
        self._handlers = EventHandlers(self)
        self.states = ConversationStates(effects, listening=self.listening,
                                         awaited=self._awaited_turns, call_later=call_later,
                                         away_after=user_away_timeout)
        self.said = SaidReplies(
            self.voicing, listening=self.listening, history=self.history, send=self.send,
            logger=logger, supersede=self._supersede, end_reply=self.end_reply,
        )
        self.tool_speech = ToolSpeaker(self.voicing, tools=self.tools, said=self.said,
                                       speak=lambda audio: self.effects.speak(audio),
                                       logger=logger)
        # (Looked up when audio comes: an Effects without audio serves a dialogue fed none.)
        self.held = HeldInput(blocked=self.said.protecting,
                              send_audio=lambda pcm: self.effects.send_audio(pcm), logger=logger)

    @property
    def replies(self) -> dict[int, Reply]:
        """The replies not yet over, by turn id."""
        return self.listening.replies

    @property
    def busy(self) -> bool:
        """A reply is being made (a response under way, queued, or waiting for tools)."""
        return self._active is not None or bool(self._queued) or any(
            reply.generating for reply in self.replies.values()
        )

    # -- client events ---------------------------------------------------------------------

    def stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with an id, remembered so that an error about it can name its cause."""
        event_id = f"fk_{next(self._ids)}"
        self._sent[event_id] = str(event["type"])
        while len(self._sent) > 256:
            self._sent.popitem(last=False)
        return {**event, "event_id": event_id}

    def send(self, event: dict[str, Any]) -> None:
        """Send a control event, stamped with an id."""
        self.effects.send(self.stamp(event))

    def create_response(self, turn_id: int, **response: Any) -> None:
        """Ask for a response for the reply ``turn_id`` (after the active one, if any)."""
        metadata = {TURN_KEY: str(turn_id)}
        event = {"type": "response.create", "response": {**response, "metadata": metadata}}
        if self._active is not None:
            self._queued.append(event)  # the API refuses a second response meanwhile
        else:
            self._request(event)

    def _request(self, event: dict[str, Any]) -> None:
        turn_id = int(event["response"]["metadata"][TURN_KEY])
        self._requested.append(turn_id)
        stamped = self.stamp(event)
        self._creates[stamped["event_id"]] = turn_id
        while len(self._creates) > 64:
            del self._creates[next(iter(self._creates))]
        self.effects.send(stamped)

    # -- server events ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Act on one server event (unknown types are ignored)."""
        self._handlers.handle(event)
        self._deliver_deferred()
        self.states.refresh()

    def on_error(
        self, kind: str, code: str | None, message: str, param: str | None, event_id: str | None
    ) -> None:
        """Log a server ``error`` event with its meaning and remedy."""
        caused_by = self._sent.get(event_id) if event_id else None
        said = describe_error(url=self.url, kind=kind, code=code, message=message,
                              param=param, caused_by=caused_by)
        self.log.log(said.level, "%s", said.message)
        turn_id = self._creates.pop(event_id, 0) if event_id else 0
        if turn_id:
            # The response was refused: the reply waiting for it will get nothing more.
            if turn_id in self._requested:
                self._requested.remove(turn_id)
            reply = self.replies.get(turn_id)
            if reply is not None and reply not in self._by_response.values():
                self.end_reply(reply)

    def on_image(self, image: Image) -> None:
        """What the agent sees now: the newest goes with the user's next turn."""
        self._unseen_image = image

    def _show_image(self) -> None:
        """Send the newest image not yet shown, as a user message before the turn's words."""
        image, self._unseen_image = self._unseen_image, None
        if image is None:
            return
        self.send({
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_image", "image_url": image.data_url()}]},
        })

    def speech_started(self, item_id: str) -> None:
        """The user started speaking: a new user turn, and a barge-in if replies play."""
        self._show_image()  # before the turn's audio item, which the server commits later
        self._add_deferred()  # the answer to this turn is made with them
        self.states.user_speaking(self._user(item_id).turn_id)
        if self.interrupt_response:
            self.listening.barge_in("barge_in")

    def speech_stopped(self, item_id: str | None) -> None:
        """The user stopped speaking (they listen): the wait for the answer's audio starts."""
        self._speech_stopped_at = self.clock()
        user = self._users.get(item_id) if item_id else None
        self.states.user_listening(user.turn_id if user is not None else None)

    def user_text(self, item_id: str, text: str, *, final: bool) -> None:
        """A transcript of the user's item: a delta (interim) or the whole text (final)."""
        user = self._user(item_id)
        if final:
            user.parts = [text]
            user.entry.text = text.strip()
        else:
            user.parts.append(text)
        self.effects.user_transcript(
            Transcript(turn_id=user.turn_id, text="".join(user.parts).strip(), final=final)
        )

    def response_created(self, response_id: str, metadata: dict[str, str] | None) -> None:
        """A response starts: a reply of its own, or the next step of a reply's tool round."""
        self._active = response_id
        self.listening.prune()
        wanted = (metadata or {}).get(TURN_KEY, "")
        turn_id = int(wanted) if wanted.isdigit() else 0
        if turn_id:
            self._echoes = True
            if turn_id in self._requested:
                self._requested.remove(turn_id)
        elif self._requested and not self._echoes:
            turn_id = self._requested.popleft()
        reply = self.replies.get(turn_id)
        if reply is None or not reply.generating:
            turn_id = turn_id or new_turn_id()
            reply = self.replies[turn_id] = Reply(turn_id)
            self.listening.entries[turn_id] = self.history.add("assistant")
        self._by_response[response_id] = reply
        self._timings[response_id] = _Timing(self.clock())
        if reply.turn_id in self._superseded:
            # Asked for before a say replaced it: none of it is to be heard.
            self._superseded.discard(reply.turn_id)
            self._drop(reply, "say", notify=False)
            self.send({"type": "response.cancel"})

    def message_item(self, response_id: str, item_id: str) -> None:
        """A message item starts: its place in the reply is its place in playout."""
        reply = self._by_response.get(response_id)
        if reply is not None:
            reply.item(item_id)

    def audio(self, response_id: str, item_id: str, delta: str) -> None:
        """A piece of the model's audio: frames for the sink, unless the reply was cut."""
        reply = self._by_response.get(response_id)
        if reply is None or reply.cut:
            return
        try:
            pcm = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError):
            self.log.warning("the server at %s sent audio that is not base64; dropped", self.url)
            return
        item = reply.item(item_id)
        item.audio_s += len(pcm) // 2 / SAMPLE_RATE
        now = self.clock()
        if reply.first_audio_at is None:
            reply.first_audio_at = now
        timing = self._timings.get(response_id)
        if timing is not None and timing.first_audio is None:
            timing.first_audio = now
        self._play(reply, item, item.framer.push(pcm))

    def audio_done(self, response_id: str, item_id: str) -> None:
        """The item's audio is complete: its last, shorter frame goes out."""
        reply = self._by_response.get(response_id)
        if reply is not None and not reply.cut:
            item = reply.item(item_id)
            self._play(reply, item, item.framer.flush())

    def agent_text(self, response_id: str, item_id: str, text: str, *, done: bool) -> None:
        """A transcript delta of the model's speech, or (``done``) the whole of it."""
        reply = self._by_response.get(response_id)
        if reply is None:
            return
        item = reply.item(item_id)
        if done:
            item.transcript, item.transcript_done = [text], True
        else:
            item.transcript.append(text)

    def text(self, response_id: str, item_id: str, text: str, *, done: bool) -> None:
        """A text delta of a text-only reply, or (``done``) an item's whole text.

        The reply's text so far goes out as an interim agent transcript; the final one
        follows when the reply ends. Voiced, the text goes to the TTS node instead, and the
        final transcript follows its playout, as for speech. Text that comes after a
        barge-in cut the reply was not shown (or spoken), so it is dropped, as the audio of
        a cut reply is.
        """
        reply = self._by_response.get(response_id)
        if reply is None or reply.cut:
            return
        timing = self._timings.get(response_id)
        if timing is not None and timing.first_text is None:
            timing.first_text = self.clock()
        shown = reply.text
        self.agent_text(response_id, item_id, text, done=done)
        if self.voicing is not None:
            self.voicing.push(reply, reply.item(item_id), text, done=done)
        elif reply.text and reply.text != shown:
            self.effects.agent_transcript(
                Transcript(turn_id=reply.turn_id, text=reply.text, final=False, speaker="agent")
            )

    def item_placed(self, item_id: str, previous_item_id: str | None) -> None:
        """The server put an item in its conversation after ``previous_item_id``.

        A reply's item, or a said reply's (which no response made).
        """
        for reply in self.replies.values():
            for item in reply.items:
                if item.item_id == item_id:
                    item.placed, item.previous_item_id = True, previous_item_id

    def function_call(self, response_id: str, call_id: str, name: str, arguments: str) -> None:
        """The model called a function (see :mod:`.tool_rounds`)."""
        reply = self._by_response.get(response_id)
        if reply is not None:
            self.tools.call(reply, call_id, name, arguments)

    def response_done(self, response_id: str, status: str, event: Any) -> None:
        """A response ended: send its figures, then end the reply or wait for its tools."""
        self._active = None if self._active == response_id else self._active
        reply = self._by_response.pop(response_id, None)
        self._measure(response_id, status, event, reply)
        if status == "failed":
            details = getattr(event.response, "status_details", None)
            error = getattr(details, "error", None)
            said = describe_failed_response(
                url=self.url, response_id=response_id,
                kind=getattr(error, "type", None), code=getattr(error, "code", None),
                message=getattr(error, "message", None),
            )
            self.log.log(said.level, "%s", said.message)
        if reply is not None:
            if not reply.cut:
                for item in reply.items:
                    self._play(reply, item, item.framer.flush())
            called = reply.round is not None and bool(reply.round.calls)
            if called and status == "completed" and not reply.cut:
                if self.voicing is not None:
                    # The model's words before its calls are spoken while the tools run,
                    # not held by the TTS node until the words after the results.
                    self.voicing.flush(reply)
                # What the tools said meanwhile goes before the round can go on.
                self.tool_speech.response_ended(reply)
                self.tools.response_ended(reply)
            else:
                self.end_reply(reply)
        if self._queued and self._active is None:
            self._request(self._queued.popleft())

    # -- inputs ----------------------------------------------------------------------------

    def on_tool_result(self, result: ToolResult) -> None:
        """A tool's result (see :mod:`.tool_rounds`).

        A result of a call the ToolRouter made itself (``result.call``: a task completed
        outside its tools) is a reply of its own, asked for as ``generate_reply`` asks:
        it waits, as they do, while a reply that may not be cut plays.
        """
        if result.call is not None and result.deferred:
            self._deferred.append(result)
            self._deliver_deferred()
        elif result.call is not None:
            self.held.run(lambda: self._take_router_result(result))
        else:
            self.tools.result(result)
        self.states.refresh()

    def _deliver_deferred(self) -> None:
        """Answer the held results of tools in the background, once the agent is idle."""
        if not self._deferred or self.busy or self.held.waits():
            return
        playing = [reply for reply in self.replies.values() if self.listening.playing(reply)]
        if playing:
            if not self.listening.playout_linked and not self._deliver_timer:
                # No report will say when it has played: the clock will (no server event
                # need come meanwhile).
                self._deliver_timer = True
                left = max(self.listening.clock_left(reply) for reply in playing)
                self._call_later(left + 0.01, self._deliver_on_clock)
            return
        results = self._add_deferred()
        if any(not result.stop_response for result in results):
            self.create_response(new_turn_id())

    def _deliver_on_clock(self) -> None:
        self._deliver_timer = False
        self._deliver_deferred()
        self.states.refresh()

    def _add_deferred(self) -> list[ToolResult]:
        """Send the held results' calls and outputs to the server; they are no more held."""
        results, self._deferred = self._deferred, []
        for result in results:
            self.tools.router_result(result)
        return results

    def _take_router_result(self, result: ToolResult) -> None:
        self.tools.router_result(result)
        if not result.stop_response:
            self.create_response(result.turn_id)
        self.states.refresh()

    def on_tool_speech(self, speech: ToolSpeech) -> None:
        """What a tool says while it runs (see :mod:`.tool_speech`)."""
        self.tool_speech.take(speech)
        self.states.refresh()

    def on_playout(self, report: Playout) -> None:
        """The sink's report (see :mod:`.listening`)."""
        self.listening.on_playout(report)
        self.held.release()
        self._deliver_deferred()
        self.states.refresh()

    def playout_closed(self) -> None:
        """No playout report can come any more."""
        self.listening.playout_closed()
        self.held.release()
        self._deliver_deferred()
        self.states.refresh()

    def on_flush(self, interrupt: Interrupt) -> None:
        """A flush from the graph: cancel the response, and cut the replies it names."""
        if interrupt.action is not InterruptAction.FLUSH:
            return
        if not interrupt.force and self.said.protecting():
            return  # typed text or a key press: the protected reply plays on, input waits
        if self._active is not None:
            self.send({"type": "response.cancel"})
        self.listening.flush(interrupt.turn_id, interrupt.reason)
        self.held.release()
        self.states.refresh()

    def user_audio(self, pcm: bytes) -> None:
        """The user's audio, for the server (held while a reply may not be cut)."""
        self.held.audio(pcm)

    def on_request(self, request: ReplyRequest) -> None:
        """A reply asked for from code: a response, or with ``say`` a text to speak.

        It waits while a reply said with ``allow_interruptions=False`` plays.
        """
        self.held.run(lambda: self._take_request(request))

    def _take_request(self, request: ReplyRequest) -> None:
        if request.say is not None:
            self.said.take(request)
            self.states.refresh()
            return
        if request.user_text:
            self._add_user_text(request.user_text)
        options = {"instructions": request.instructions} if request.instructions else {}
        self.create_response(request.turn_id or new_turn_id(), **options)
        self.states.refresh()

    def on_turn(self, turn: UserTurn) -> None:
        """A user turn the graph made (typed text, a key-pad entry): a reply of its own.

        It waits, as requests do, while a reply that may not be cut plays.
        """
        self.held.run(lambda: self._take_turn(turn))

    def _take_turn(self, turn: UserTurn) -> None:
        self._add_deferred()  # the answer to this turn is made with them
        if note := turn.context_note():
            # Before the user's words, as the LLM node puts a turn's notes.
            self.send({
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": note}]},
            })
            self.history.add("assistant", note)
        self._add_user_text(turn.text)
        if turn.reply:
            self.create_response(turn.turn_id)
        self.states.refresh()

    def _add_user_text(self, text: str) -> None:
        """The user's words as a text message, after the newest image not yet shown."""
        self._show_image()
        self.send({
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": text}]},
        })
        self.history.add("user", text)

    def on_commit(self, *, respond: bool) -> None:
        """End the user's turn now (no server turn detection); ask for the answer.

        It waits, as the user's audio does, while a reply that may not be cut plays.
        """
        self.held.run(lambda: self._commit(respond))

    def on_clear(self) -> None:
        """Drop the user's audio not yet committed (a push to talk cancelled or begun again).

        It waits, as the user's audio does, while a reply that may not be cut plays, so it
        drops only what came before it.
        """
        self.held.run(lambda: self.send({"type": "input_audio_buffer.clear"}))

    def _commit(self, respond: bool) -> None:
        self._show_image()
        self.send({"type": "input_audio_buffer.commit"})
        if respond:
            self.create_response(new_turn_id())
            self.states.refresh()

    # -- replies said from code ----------------------------------------------------------

    def _supersede(self) -> None:
        """Cut what is under way for a said reply, as the LLM node cancels its reply for one."""
        if self._active is not None:
            self.send({"type": "response.cancel"})
        queued = [int(event["response"]["metadata"][TURN_KEY]) for event in self._queued]
        self._queued.clear()
        self._superseded.update(self._requested)
        for reply in list(self.replies.values()):
            if not reply.cut and (reply.generating or self.listening.playing(reply)):
                self._drop(reply, "say", notify=True)
        for turn_id in queued:
            waiting = self.replies.get(turn_id)
            if waiting is not None:
                self.end_reply(waiting)  # the next response of its tool round will not come

    def _drop(self, reply: Reply, reason: str, *, notify: bool) -> None:
        """Cut ``reply`` for a said one, even if none of it was sent yet.

        A text reply the TTS node speaks is marked voiced: it is heard as far as the sink
        reports (nothing, if it never started), so whatever the model wrote of it is
        rewritten or deleted on the server too. A reply the model speaks itself (a recording
        said on such a model) is cut as a barge-in cuts it: its audio truncated where the
        sink stopped.
        """
        if self.voicing is not None:
            reply.voiced = True
        self.listening.cut(reply, reason, notify=notify)

    # -- replies ---------------------------------------------------------------------------

    def end_reply(self, reply: Reply) -> None:
        """The model is done with ``reply``: its end marker goes out."""
        if not reply.generating:
            return
        reply.generating = False
        self.tool_speech.reply_ended(reply)
        if reply.round is not None and reply.round.timer is not None:
            reply.round.timer.cancel()
        reply.round = None
        if reply.audio_s > 0:
            self.effects.speak(AgentAudio(frame=None, turn_id=reply.turn_id, final=True,
                                          allow_interruptions=reply.allow_interruptions))
        elif reply.voiced:
            # The sink reports when it has played it (if linked). A recording said on a
            # model that speaks itself went out with its end marker (SaidReplies._play).
            if self.voicing is not None:
                self.voicing.end(reply)
        else:
            # Nothing of it went to the sink (a text reply, or one cut before its audio): no
            # playout report will come, and an end marker would open an empty reply there.
            reply.played_out = True
        self.listening.publish(reply)

    def connection_lost(self) -> None:
        """The connection ended: end every reply (what was received still plays)."""
        self._active = None
        self._queued.clear()
        self._requested.clear()
        self._superseded.clear()
        self._creates.clear()
        self._by_response.clear()
        self._timings.clear()
        self.tools.forget()
        self.session_confirmed = False
        for reply in list(self.replies.values()):
            self.end_reply(reply)
        # The speech the server was hearing is gone with its session.
        self.states.user_listening()
        self.states.refresh()

    def close(self) -> None:
        """The node is ending: cancel what is scheduled."""
        self.states.stop()

    def _awaited_turns(self) -> list[int]:
        """The replies asked for whose response has not started (sent, or queued)."""
        queued = [int(event["response"]["metadata"][TURN_KEY]) for event in self._queued]
        return [*self._requested, *queued]

    def _play(self, reply: Reply, item: SpokenItem, frames: list[Any]) -> None:
        segment = reply.items.index(item)
        for frame in frames:
            self.effects.speak(AgentAudio(frame=frame, turn_id=reply.turn_id, segment=segment,
                                          allow_interruptions=reply.allow_interruptions))

    def _user(self, item_id: str) -> _UserItem:
        user = self._users.get(item_id)
        if user is None:
            user = self._users[item_id] = _UserItem(new_turn_id(), self.history.add("user"))
            while len(self._users) > 64:
                del self._users[next(iter(self._users))]
        return user

    def _measure(self, response_id: str, status: str, event: Any, reply: Reply | None) -> None:
        timing = self._timings.pop(response_id, None)
        if timing is None:
            return
        values = {"duration": self.clock() - timing.created}
        if timing.first_text is not None:
            values["ttft"] = timing.first_text - timing.created
        if timing.first_audio is not None:
            values["ttfa"] = timing.first_audio - timing.created
            if self._speech_stopped_at is not None:
                values["end_of_speech_to_audio"] = timing.first_audio - self._speech_stopped_at
                self._speech_stopped_at = None
        usage = getattr(event.response, "usage", None)
        for name in ("input_tokens", "output_tokens"):
            count = getattr(usage, name, None)
            if isinstance(count, int):
                values[name] = float(count)
        self.effects.metrics(Metrics(
            kind="realtime", turn_id=reply.turn_id if reply is not None else 0,
            values=values, labels={"response_id": response_id, "status": status},
        ))
