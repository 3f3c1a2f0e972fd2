"""A chat LLM on any OpenAI-compatible Chat Completions endpoint, and its node.

:class:`OpenAILLMProvider` streams ``/chat/completions`` through the official ``openai``
SDK: OpenAI itself, or a local server (llama.cpp's ``llama_cpp.server``, vLLM, Ollama's
``/v1``) given its ``base_url``. Text is passed on delta by delta; tool calls are streamed
as argument fragments per call index and passed on whole, after the model's text, once the
stream has ended; the token usage comes last when the server reports it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from flowkit.nodes.llm import LLM
from flowkit.providers.chat import ChatMessage, ToolSpec
from flowkit.providers.errors import ProviderRejected
from flowkit.providers.llm import LLMChunk, TextDelta, ToolCallChunk, ToolChoice, Usage
from flowkit.tools.function_tool import FunctionTool
from flowkit.tools.invoke import AgentLike
from flowkit_openai._client import ClientPool, Connection
from flowkit_openai.errors import MALFORMED_ERRORS, malformed_answer, map_openai_error

__all__ = ["OpenAILLM", "OpenAILLMProvider", "to_openai_messages"]

_CHOICES = frozenset(("auto", "required", "none"))


def to_openai_messages(history: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Convert a flowkit chat history to Chat Completions ``messages``.

    Args:
        history: The conversation, system message first.

    Returns:
        One message dict per :class:`ChatMessage`: assistant tool calls become
        ``tool_calls`` entries, tool results become ``tool`` messages with their
        ``tool_call_id``. ``content`` is a string, ``""`` for an assistant message that
        only calls tools, except for a user message with images: a list of content parts,
        its text and then each image as an ``image_url`` data URL.
    """
    messages: list[dict[str, Any]] = []
    for message in history:
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            # OpenAI takes null or "" here, but llama_cpp.server's schema rejects null.
            entry["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in message.tool_calls
            ]
        elif message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
        elif message.role == "user":
            if message.name:
                entry["name"] = message.name
            if message.images:
                # Chat Completions' content parts: the text, then each image as a data URL.
                entry["content"] = [
                    {"type": "text", "text": message.content},
                    *(
                        {"type": "image_url", "image_url": {"url": image.data_url()}}
                        for image in message.images
                    ),
                ]
        messages.append(entry)
    return messages


@dataclass(slots=True)
class _PartialCall:
    """A tool call whose fragments are still arriving."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAILLMProvider:
    """An :class:`~flowkit.providers.LLMProvider` on an OpenAI-compatible chat endpoint.

    Example:
        >>> llm = OpenAILLMProvider("gpt-4o-mini")  # doctest: +SKIP
        >>> local = OpenAILLMProvider(  # doctest: +SKIP
        ...     "smollm2", base_url="http://127.0.0.1:8000/v1"
        ... )
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_tokens: int | None = None,
        temperature: float | None = None,
        parallel_tool_calls: bool | None = None,
        stream_usage: bool = True,
        max_retries: int = 0,
        extra_body: dict[str, Any] | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """Configure the provider (no connection is made until the first request).

        Args:
            model: The model name the server knows.
            base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``; ``None`` for OpenAI.
            api_key: The key; ``None`` reads ``OPENAI_API_KEY``, else sends ``"not-needed"``
                (what local servers expect).
            timeout: Seconds to wait for the connection and for each piece of the answer.
            max_tokens: The most tokens a reply may have (sent as ``max_tokens``, which
                local servers understand); ``None`` for the server's default.
            temperature: Sampling temperature; ``None`` for the server's default.
            parallel_tool_calls: Whether the model may call several tools at once; ``None``
                does not send the field (not every server accepts it).
            stream_usage: Ask for the token usage at the end of the stream
                (``stream_options.include_usage``); turn off for a server that rejects it.
            max_retries: Retries the SDK makes itself (see :class:`Connection`).
            extra_body: More fields for the request body, for server-specific options.
            client: An SDK client to use instead of making one per event loop.

        Raises:
            ValueError: A negative or zero ``timeout``, ``max_tokens`` or ``max_retries``.
        """
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0 or None, got {max_tokens}")
        self.model = model
        self.connection = Connection(base_url, api_key, timeout, max_retries)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.parallel_tool_calls = parallel_tool_calls
        self.stream_usage = stream_usage
        self.extra_body = dict(extra_body or {})
        self._clients = ClientPool(self.connection, client)

    @property
    def name(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self.model}"

    def __repr__(self) -> str:
        # The key stays out: reprs end up in graph specs, drawings and logs.
        return f"OpenAILLMProvider(model={self.model!r}, base_url={self.connection.base_url!r})"

    async def aclose(self) -> None:
        """Close the running event loop's HTTP client and its kept-alive connections.

        Optional: call it when a session's loop is about to end; the provider stays usable
        (the next request opens a new client).
        """
        await self._clients.aclose()

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[LLMChunk]:
        """Stream the answer to ``history`` (see :class:`~flowkit.providers.LLMProvider`).

        The request starts on the first ``__anext__``; closing the iterator closes the
        HTTP stream.

        Args:
            history: The conversation, system message first.
            tools: The tools the model may call.
            tool_choice: ``"auto"``, ``"required"``, ``"none"`` or the name of one tool.

        Returns:
            Text deltas as they arrive, then each complete tool call, then the
            :class:`Usage` when the server reports it.
        """
        return self._chat(tuple(history), tuple(tools), tool_choice)

    def _request(
        self, history: Sequence[ChatMessage], tools: Sequence[ToolSpec], tool_choice: str
    ) -> dict[str, Any]:
        request: dict[str, Any] = dict(self.extra_body)
        if self.stream_usage:
            request["stream_options"] = {"include_usage": True}
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if not tools:
            return request  # the API rejects tool_choice without tools
        names = [t.name for t in tools]
        if tool_choice not in _CHOICES and tool_choice not in names:
            raise ProviderRejected(
                f"tool_choice {tool_choice!r} is neither auto/required/none nor one of the "
                f"tools given ({', '.join(names)}); pass one of those",
                provider=self.name,
            )
        request["tools"] = [t.to_openai() for t in tools]
        request["tool_choice"] = (
            tool_choice
            if tool_choice in _CHOICES
            else {"type": "function", "function": {"name": tool_choice}}
        )
        if self.parallel_tool_calls is not None:
            request["parallel_tool_calls"] = self.parallel_tool_calls
        return request

    async def _chat(
        self, history: Sequence[ChatMessage], tools: Sequence[ToolSpec], tool_choice: str
    ) -> AsyncIterator[LLMChunk]:
        request = self._request(history, tools, tool_choice)
        url = self.connection.resolved_url
        try:
            stream = await self._clients.get().chat.completions.create(
                model=self.model,
                messages=cast(Any, to_openai_messages(history)),
                stream=True,
                **request,
            )
        except Exception as error:
            raise self._error(error) from error
        calls: dict[int, _PartialCall] = {}
        usage: Usage | None = None
        try:
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as error:
                    raise self._error(error) from error
                try:
                    texts, chunk_usage = _read_chunk(chunk, calls)
                except MALFORMED_ERRORS as error:
                    raise malformed_answer(self.name, url, error) from error
                if chunk_usage is not None:
                    usage = chunk_usage
                for text in texts:
                    yield TextDelta(text)
        finally:
            # Closing the response drops the connection, so the server stops generating.
            await stream.close()
        for index in sorted(calls):
            partial = calls[index]
            if not partial.name:
                raise malformed_answer(
                    self.name, url, ValueError(f"tool call #{index} came without a name")
                )
            yield ToolCallChunk(
                call_id=partial.call_id or f"call_{uuid.uuid4().hex[:24]}",
                name=partial.name,
                arguments="".join(partial.arguments).strip() or "{}",
            )
        if usage is not None:
            yield usage

    def _error(self, error: BaseException) -> Exception:
        return map_openai_error(
            self.name,
            self.connection.resolved_url,
            error,
            api_key=self.connection.resolved_key,
            timeout=self.connection.timeout,
        )


def _read_chunk(
    chunk: ChatCompletionChunk, calls: dict[int, _PartialCall]
) -> tuple[list[str], Usage | None]:
    """The text of one streamed chunk and its usage; tool call fragments go into ``calls``."""
    texts: list[str] = []
    usage: Usage | None = None
    if chunk.usage is not None:
        usage = Usage(
            prompt_tokens=int(chunk.usage.prompt_tokens or 0),
            completion_tokens=int(chunk.usage.completion_tokens or 0),
        )
    for choice in chunk.choices or ():
        if choice.index:
            continue  # n > 1 is never asked for; other choices would interleave text
        # Some servers send "delta": null in the closing chunk, whatever the types say.
        delta: ChoiceDelta | None = choice.delta
        if delta is None:
            continue
        if delta.content:
            texts.append(delta.content)
        for position, fragment in enumerate(delta.tool_calls or ()):
            # Some servers leave out the index of a call sent whole: its position is its index.
            index = fragment.index if isinstance(fragment.index, int) else position
            partial = calls.setdefault(index, _PartialCall())
            if fragment.id:
                partial.call_id = fragment.id
            function = fragment.function
            if function is not None:
                if function.name:
                    partial.name += function.name if partial.name != function.name else ""
                if function.arguments:
                    partial.arguments.append(function.arguments)
    return texts, usage


class OpenAILLM(LLM):
    """The :class:`~flowkit.nodes.llm.LLM` node on an OpenAI-compatible endpoint.

    ``OpenAILLM("gpt-4o-mini", instructions=...)`` is
    ``LLM(OpenAILLMProvider("gpt-4o-mini"), instructions=...)``; ports and behaviour are the
    LLM node's.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_tokens: int | None = None,
        temperature: float | None = None,
        instructions: str = "",
        tools: Sequence[FunctionTool] = (),
        agent: AgentLike | None = None,
        max_tool_steps: int = 3,
        max_history: int | None = None,
        tool_result_timeout: float = 60.0,
    ) -> None:
        """Create the node and its provider.

        Args:
            model: See :class:`OpenAILLMProvider`.
            base_url: See :class:`OpenAILLMProvider`.
            api_key: See :class:`OpenAILLMProvider`.
            timeout: See :class:`OpenAILLMProvider`.
            max_tokens: See :class:`OpenAILLMProvider`.
            temperature: See :class:`OpenAILLMProvider`.
            instructions: See :class:`~flowkit.nodes.llm.LLM`.
            tools: See :class:`~flowkit.nodes.llm.LLM`.
            agent: See :class:`~flowkit.nodes.llm.LLM`.
            max_tool_steps: See :class:`~flowkit.nodes.llm.LLM`.
            max_history: See :class:`~flowkit.nodes.llm.LLM`.
            tool_result_timeout: See :class:`~flowkit.nodes.llm.LLM`.
        """
        provider = OpenAILLMProvider(
            model,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        super().__init__(
            provider,
            instructions=instructions,
            tools=tools,
            agent=agent,
            max_tool_steps=max_tool_steps,
            max_history=max_history,
            tool_result_timeout=tool_result_timeout,
        )
