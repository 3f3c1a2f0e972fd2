from __future__ import annotations

import pytest

from flowkit.messages import Image, ToolCall, ToolResult
from flowkit.providers import ChatHistory, ChatMessage, ToolSpec


def call(call_id: str) -> ToolCall:
    return ToolCall(call_id=call_id, name="weather", arguments='{"city": "Paris"}')


def result(call_id: str) -> ToolResult:
    return ToolResult(call_id=call_id, name="weather", output="sunny")


def test_instructions_are_the_one_system_message_at_the_top() -> None:
    history = ChatHistory(messages=[ChatMessage("user", "hi")])
    assert history.instructions is None
    history.instructions = "Be brief."
    history.instructions = "Be very brief."
    assert [m.role for m in history.messages] == ["system", "user"]
    assert history.messages[0].content == "Be very brief."
    history.instructions = None
    assert [m.role for m in history.messages] == ["user"]
    with pytest.raises(ValueError, match="instructions"):
        history.append(ChatMessage("system", "sneaky"))


def test_messages_are_frozen_and_validated() -> None:
    message = ChatMessage("user", "hi")
    with pytest.raises(AttributeError):
        message.content = "changed"  # type: ignore[misc]
    with pytest.raises(ValueError, match="role"):
        ChatMessage("robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tool_call_id"):
        ChatMessage("tool", "sunny")
    spec = ToolSpec("weather", "Look up the weather.")
    assert spec.parameters["type"] == "object"


def test_truncate_last_assistant_keeps_what_was_played() -> None:
    history = ChatHistory("sys")
    history.add_user("tell me a story")
    history.add_assistant("Once upon a time there was a fox.")
    cut = history.truncate_last_assistant("Once upon a time")
    assert cut is not None and cut.interrupted
    assert history.messages[-1] == ChatMessage("assistant", "Once upon a time", interrupted=True)
    assert len(history) == 3


def test_truncate_removes_a_reply_nothing_of_which_was_played() -> None:
    history = ChatHistory("sys")
    history.add_user("hello")
    history.add_assistant("Hi! How can I help?")
    assert history.truncate_last_assistant("") is None
    assert [m.role for m in history.messages] == ["system", "user"]


def test_truncate_keeps_an_unplayed_reply_that_called_tools() -> None:
    history = ChatHistory()
    history.add_user("weather?")
    history.add_assistant("", [call("c1")])
    history.add_tool_result(result("c1"))
    history.add_assistant("It is sunny in Paris.")
    history.add_user("and tomorrow?")
    cut = history.truncate_last_assistant("It is")
    assert cut is not None and cut.content == "It is"
    assert history.messages[3] == cut  # the last assistant, not the tool-calling one
    assert history.messages[1].tool_calls == (call("c1"),)
    assert ChatHistory().truncate_last_assistant("x") is None


def _reply_over_a_tool_round(turn_id: int) -> ChatHistory:
    """A reply that spoke, called a tool (which said a sentence), then spoke again."""
    history = ChatHistory("sys")
    history.add_user("weather?")
    history.add_assistant("Let me  check.", [call("c1")], turn_id=turn_id)
    history.extend_last_assistant("One moment.")
    history.add_tool_result(result("c1"))
    history.add_assistant("It is sunny in Paris today.", turn_id=turn_id)
    return history


def test_truncate_reply_shares_what_was_played_among_the_replys_messages() -> None:
    history = _reply_over_a_tool_round(7)
    # The speaker joins the sentences its way; words are what is shared out.
    assert history.truncate_reply(7, "Let me check. One moment. It is sunny")
    first, second = history.messages[2], history.messages[4]
    assert (first.content, first.interrupted) == ("Let me  check. One moment.", False)
    assert first.tool_calls == (call("c1"),)
    assert (second.content, second.interrupted, second.turn_id) == ("It is sunny", True, 7)


def test_truncate_reply_cut_in_its_first_message_drops_the_text_after() -> None:
    history = _reply_over_a_tool_round(7)
    assert history.truncate_reply(7, "Let me check. One")
    assert [m.role for m in history.messages] == ["system", "user", "assistant", "tool"]
    cut = history.messages[2]
    assert (cut.content, cut.interrupted, cut.tool_calls) == (
        "Let me check. One", True, (call("c1"),)
    )
    # Nothing heard: the calls stay (their result follows), with no text.
    history = _reply_over_a_tool_round(7)
    assert history.truncate_reply(7, "")
    assert [(m.role, m.content, m.interrupted) for m in history.messages[2:]] == [
        ("assistant", "", True), ("tool", "sunny", False),
    ]


def test_truncate_reply_touches_only_its_own_turn() -> None:
    history = _reply_over_a_tool_round(7)
    history.add_user("and tomorrow?")
    history.add_assistant("Tomorrow it rains.", turn_id=8)
    before = history.messages
    assert not history.truncate_reply(9, "Tomorrow")
    assert not history.truncate_reply(0, "x")  # 0: a message of no known reply
    assert history.messages == before
    assert history.truncate_reply(8, "Tomorrow")
    assert history.messages[:-1] == before[:-1]
    assert history.messages[-1].content == "Tomorrow"


def test_replace_tool_result_answers_the_call_in_place() -> None:
    history = _reply_over_a_tool_round(7)
    history.add_user("and tomorrow?")
    late = ToolResult(call_id="c1", name="weather", output="rain")
    replaced = history.replace_tool_result(late)
    assert replaced is not None and history.messages[3] == replaced
    assert (replaced.role, replaced.content, replaced.tool_call_id) == ("tool", "rain", "c1")
    assert len(history) == 6
    assert history.replace_tool_result(result("c9")) is None
    assert len(history) == 6


def test_copy_is_independent() -> None:
    history = ChatHistory("sys")
    history.add_user("one")
    twin = history.copy()
    twin.add_user("two")
    assert len(history) == 2 and len(twin) == 3


def test_trim_keeps_system_and_newest() -> None:
    history = ChatHistory("sys")
    for i in range(5):
        history.add_user(f"u{i}")
    assert history.trim(2) == 3
    assert [m.content for m in history.messages] == ["sys", "u3", "u4"]
    assert history.trim(10) == 0
    with pytest.raises(ValueError, match="max_messages"):
        history.trim(-1)


def test_trim_never_keeps_a_tool_result_without_its_call() -> None:
    history = ChatHistory("sys")
    history.add_user("weather in Paris and Rome?")
    history.add_assistant("", [call("a"), call("b")])
    history.add_tool_result(result("a"))
    history.add_tool_result(result("b"))
    history.add_assistant("Sunny in both.")
    # Keeping 3 would start at the result of "a", whose call would be gone.
    dropped = history.trim(3)
    assert dropped == 4
    assert [m.role for m in history.messages] == ["system", "assistant"]
    # Keeping 4 starts at the call itself: nothing is separated.
    history = ChatHistory("sys")
    history.add_assistant("", [call("a")])
    history.add_tool_result(result("a"))
    history.add_assistant("Sunny.")
    assert history.trim(3) == 0
    assert [m.role for m in history.messages] == ["system", "assistant", "tool", "assistant"]


def _image(tag: bytes) -> Image:
    return Image(data=tag, width=2, height=2)


def test_only_a_user_message_carries_images() -> None:
    seen = ChatMessage("user", "what is this?", images=(_image(b"a"),))
    assert seen.images[0].data == b"a"
    with pytest.raises(ValueError, match="only a user ChatMessage carries images"):
        ChatMessage("assistant", "a cat", images=(_image(b"a"),))


def test_keep_images_strips_all_but_the_newest_messages_images() -> None:
    history = ChatHistory("be brief")
    history.add_user("look", [_image(b"1")])
    history.add_assistant("a cat")
    history.add_user("and now?", [_image(b"2"), _image(b"3")])
    history.add_user("no picture here")
    history.add_user("last", [_image(b"4")])
    assert history.keep_images(2) == 1
    assert [[i.data for i in m.images] for m in history.messages if m.role == "user"] == [
        [], [b"2", b"3"], [], [b"4"],
    ]
    assert [m.content for m in history.messages][1] == "look"  # the text stays
    assert history.keep_images(0) == 2
    assert not any(m.images for m in history.messages)
    with pytest.raises(ValueError, match="max_images must be >= 0"):
        history.keep_images(-1)


def test_since_call_keeps_the_system_message_and_what_follows_the_call() -> None:
    history = ChatHistory("Ask for the email.")
    history.add_user("Book me for Friday")
    history.add_assistant("Let me book that.", [call("c1")])
    history.add_tool_result(result("c1"))
    history.add_assistant("What is your email?")
    history.add_user("ana@example.com")
    view = history.since_call("c1")
    assert [m.role for m in view] == ["system", "assistant", "tool", "assistant", "user"]
    assert view[0].content == "Ask for the email." and view[1].content == "Let me book that."
    # A call no message made (trimmed away, say): the whole history.
    assert history.since_call("gone") == history.messages
    # Without instructions, the view starts at the call.
    bare = ChatHistory(messages=history.messages[1:])
    assert [m.role for m in bare.since_call("c1")] == ["assistant", "tool", "assistant", "user"]
