"""Tool rounds: the model's function calls out, their results back, and the reply going on.

A response that calls functions ends (``response.done``) before anything is answered. Each
call goes to the ToolRouter at once; each result goes back to the server at once as a
``function_call_output`` item; when the round is complete (every call of the ended
response answered, or ``tool_result_timeout`` passed, which answers the missing ones with an
error) the reply goes on with a ``response.create`` whose metadata names it, so the next
response is the same reply for the listener. A reply that was cut meanwhile, a result with
``stop_response`` or a hand-off's switch end it there instead; after ``max_tool_steps``
rounds the next response may not call tools (``tool_choice: "none"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowkit.messages import ToolCall, ToolResult
from flowkit_openai.realtime.conversation import Reply, ToolRound
from flowkit_openai.realtime.effects import Effects

__all__ = ["ToolRounds"]


class ToolRounds:
    """The tool rounds of every reply (see the module).

    Args:
        effects: Where tool calls and hand-offs go.
        send: Sends a client event (stamped with an id).
        call_later: Schedules the timeout of a round.
        create_response: Asks for the next response of a reply.
        end_reply: Ends a reply.
        max_tool_steps: Rounds per reply before tools are refused.
        tool_result_timeout: Seconds a round waits for its results.
    """

    def __init__(
        self,
        effects: Effects,
        *,
        send: Callable[[dict[str, Any]], None],
        call_later: Callable[[float, Callable[[], None]], Any],
        create_response: Callable[..., None],
        end_reply: Callable[[Reply], None],
        max_tool_steps: int,
        tool_result_timeout: float,
    ) -> None:
        self.effects, self._send, self._call_later = effects, send, call_later
        self._create_response, self._end_reply = create_response, end_reply
        self.max_tool_steps = max_tool_steps
        self.tool_result_timeout = tool_result_timeout
        self._by_call: dict[str, Reply] = {}

    def call(self, reply: Reply, call_id: str, name: str, arguments: str) -> None:
        """The model called a function: the call goes to the tool router now."""
        call = ToolCall(turn_id=reply.turn_id, call_id=call_id, name=name,
                        arguments=arguments or "{}")
        if reply.round is None:
            reply.round = ToolRound()
        reply.round.calls[call_id] = call
        self._by_call[call_id] = reply
        self.effects.tool_call(call)

    def response_ended(self, reply: Reply) -> None:
        """The response that made the calls is done: wait (bounded) for their results."""
        tools = reply.round
        assert tools is not None
        tools.response_done = True
        tools.timer = self._call_later(self.tool_result_timeout, lambda: self._timed_out(reply))
        self._go_on(reply)

    def result(self, result: ToolResult) -> None:
        """A tool's result: to the model at once; the reply goes on when its round is done.

        A result no round waits for any more (an unknown call, or one the timeout answered
        already) is not sent, but its handoff is followed: the ToolRouter switched its tools
        when it sent it, and the two must stay in step.
        """
        reply = self._by_call.pop(result.call_id, None)
        if reply is None:
            if result.handoff is not None:
                self.effects.handoff(result.handoff)
            return
        self._send_output(result)
        if reply.round is not None and result.call_id in reply.round.calls:
            reply.round.results[result.call_id] = result
            self._go_on(reply)

    def router_result(self, result: ToolResult) -> None:
        """Give the model a call the ToolRouter made and its result; follow its handoff.

        The router makes a call of its own to bring back the outcome of a task completed
        outside any tool call (``result.call``; :mod:`flowkit.tools.task`): the server gets
        the call as a ``function_call`` item, as if the model had made it, then its output.
        The caller asks for the response.
        """
        call = result.call
        assert call is not None, "a result of the model's own call goes to result()"
        self._send({
            "type": "conversation.item.create",
            "item": {"type": "function_call", "call_id": call.call_id, "name": call.name,
                     "arguments": call.arguments},
        })
        self._send_output(result)
        if result.handoff is not None:
            self.effects.handoff(result.handoff)

    def _send_output(self, result: ToolResult) -> None:
        output = f"error: {result.output}" if result.is_error else result.output
        self._send({
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": result.call_id,
                     "output": output},
        })

    def awaiting(self, call_id: str) -> Reply | None:
        """The reply whose tool round waits for the result of ``call_id``, if one does.

        ``None`` for a call that was answered (the timeout's error result included), that
        the connection's end forgot, that no response made, or whose reply ended without
        its round (cut once the calling response was done). A reply cut while that
        response still streams keeps its round until the response ends: the caller checks
        :attr:`Reply.cut`.
        """
        reply = self._by_call.get(call_id)  # (a result takes its call out of it)
        if reply is None or reply.round is None or call_id not in reply.round.calls:
            return None
        return reply

    def forget(self) -> None:
        """The connection ended: no result can reach the model any more."""
        self._by_call.clear()

    def _go_on(self, reply: Reply) -> None:
        tools = reply.round
        if tools is None or not tools.complete:
            return
        if tools.timer is not None:
            tools.timer.cancel()
        reply.round = None
        results = [tools.results[call_id] for call_id in tools.calls]
        for result in results:
            if result.handoff is not None:
                self.effects.handoff(result.handoff)
        if reply.cut or any(result.stop_response for result in results):
            self._end_reply(reply)
            return
        reply.tool_rounds += 1
        options = {"tool_choice": "none"} if reply.tool_rounds >= self.max_tool_steps else {}
        self._create_response(reply.turn_id, **options)

    def _timed_out(self, reply: Reply) -> None:
        tools = reply.round
        if tools is None:
            return
        tools.timer = None
        for call in tools.calls.values():
            if call.call_id not in tools.results:
                self.result(ToolResult(
                    turn_id=call.turn_id, call_id=call.call_id, name=call.name, is_error=True,
                    output=f"the tool {call.name!r} gave no result within "
                    f"{self.tool_result_timeout:g} s",
                ))
