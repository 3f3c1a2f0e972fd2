"""Exceptions a tool raises to steer the conversation, and errors in defining tools.

A tool talks to the LLM through what it returns or raises:

- return a value: the value (as text or JSON) goes back to the LLM, which then replies;
- raise :class:`ToolError`: its message goes back as an error result, and the LLM can
  apologise, ask the user for something else or call the tool again with better arguments;
- raise :class:`StopResponse`: the call is recorded, but the LLM must not reply to it (the
  tool already said what had to be said, or handed over to someone who will).

:class:`ToolDefinitionError` and :class:`DuplicateToolError` are raised while tools are being
defined or collected, never while a conversation runs.
"""

from __future__ import annotations

__all__ = ["DuplicateToolError", "StopResponse", "ToolDefinitionError", "ToolError"]


class ToolError(Exception):
    """A failure the LLM should hear about, in words it can act on.

    The message is sent to the LLM verbatim as an error result and the conversation goes on,
    so write it for the LLM: what went wrong and what to do instead.

    Args:
        message: The text sent to the LLM, e.g. ``"No flights on that date; ask for
            another date."``.

    Attributes:
        message: The text sent to the LLM.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StopResponse(Exception):  # noqa: N818 (a request to the LLM node, not an error)
    """Ask the LLM node not to generate a reply after this tool call.

    Raise it from a tool that has already spoken to the user (for example with
    ``ctx.say(...)``) or that ended the conversation. The call is still answered with an
    empty, non-error result so that the chat history stays well formed.
    """


class ToolDefinitionError(TypeError):
    """A function cannot become a tool as written; the message says why and how to fix it."""


class DuplicateToolError(ValueError):
    """Two tools in one :class:`~flowkit.tools.ToolSet` share a name.

    Args:
        name: The shared name.
        first: A description of the tool that already had the name.
        second: A description of the tool that was added with the same name.

    Attributes:
        name: The shared name.
    """

    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__(
            f"two tools are named {name!r}: {first} and {second}; the LLM calls tools by "
            f"name, so give one of them another name with @function_tool(name=...)"
        )
        self.name = name
