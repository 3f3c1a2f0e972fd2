from collections.abc import Sequence

import pytest

from flowkit.messages import ToolCall
from flowkit.tools import (
    DuplicateToolError,
    FunctionTool,
    RunContext,
    ToolDefinitionError,
    ToolSet,
    ToolSpec,
    function_tool,
    invoke_tool,
    tools_of,
)


class Counter:
    instructions = "Count things."

    def __init__(self, start: int) -> None:
        self.value = start

    @function_tool
    async def add(self, ctx: RunContext, amount: int) -> int:
        """Add to the counter.

        Args:
            amount: How much to add.
        """
        self.value += amount
        return self.value

    @function_tool(name="read_counter")
    def read(self) -> int:
        """Read the counter."""
        return self.value

    def not_a_tool(self) -> None: ...

    @property
    def tools(self) -> Sequence[FunctionTool]:
        return tools_of(self)


class QuietCounter(Counter):
    read = None  # type: ignore[assignment]  # hides the inherited tool


@function_tool
async def echo(ctx: RunContext, text: str) -> str:
    """Repeat the text."""
    return text


def test_method_tool_schema_leaves_out_self_and_context() -> None:
    tool = Counter.add
    assert tool.signature.takes_self
    assert tool.parameters["properties"] == {
        "amount": {"type": "integer", "description": "How much to add."}
    }
    assert Counter.__dict__["read"].parameters["properties"] == {}


def test_reading_from_an_instance_binds_and_from_the_class_does_not() -> None:
    a, b = Counter(1), Counter(2)
    assert a.add.bound_to is a
    assert b.add.bound_to is b
    assert Counter.add.needs_instance
    assert not a.add.needs_instance
    assert a.add == a.add  # a fresh bound copy per access, but equal
    assert a.add != b.add
    assert len({a.add, a.add, b.add}) == 2


async def test_bound_method_tools_run_on_their_instance() -> None:
    a, b = Counter(10), Counter(100)
    c = ToolCall(call_id="c", name="add", arguments='{"amount": 5}')
    ctx = RunContext(call=c, userdata=None)
    outcome = await invoke_tool(a.add, ctx.call, ctx, timeout=None)
    assert outcome.result.output == "15"
    assert (a.value, b.value) == (15, 100)
    # Direct calls prepend the instance too.
    assert await b.add(ctx, 1) == 101
    assert b.read() == 101


def test_unbound_method_tool_is_refused_with_the_remedy() -> None:
    with pytest.raises(TypeError, match="take it from an instance"):
        Counter.add(None, 1)
    with pytest.raises(ToolDefinitionError, match=r"'add' is a method .* read from its class"):
        ToolSet([Counter.add])


def test_tools_of_collects_bound_tools_in_order_and_respects_overrides() -> None:
    c = Counter(0)
    assert [t.name for t in tools_of(c)] == ["add", "read_counter"]
    assert all(t.bound_to is c for t in tools_of(c))
    assert [t.name for t in tools_of(QuietCounter(0))] == ["add"]


def test_nested_function_in_a_function_is_not_a_method() -> None:
    @function_tool
    def double(x: int) -> int:
        return 2 * x

    assert not double.signature.takes_self
    assert double(4) == 8
    assert list(double.parameters["properties"]) == ["x"]


def test_toolset_by_name_and_specs() -> None:
    c = Counter(0)
    tools = ToolSet([echo, *tools_of(c)])
    assert tools.names == ["echo", "add", "read_counter"]
    assert tools["echo"] is echo
    assert tools.get("missing") is None
    assert "add" in tools
    assert len(tools) == 3
    specs = tools.specs()
    assert specs[0] == ToolSpec("echo", "Repeat the text.", echo.parameters)
    name, description, parameters = specs[1].name, specs[1].description, specs[1].parameters
    assert (name, description) == ("add", "Add to the counter.")
    assert parameters["required"] == ["amount"]
    assert specs[0].to_openai() == {
        "type": "function",
        "function": {
            "name": "echo", "description": "Repeat the text.", "parameters": echo.parameters,
        },
    }


def test_toolset_unknown_name_lists_the_tools() -> None:
    with pytest.raises(KeyError, match="the tools are echo"):
        ToolSet([echo])["nope"]


def test_duplicate_names_are_a_clear_error() -> None:
    @function_tool(name="echo")
    def other(text: str) -> str:
        return text

    with pytest.raises(DuplicateToolError, match=r"two tools are named 'echo'.*name=") as info:
        ToolSet([echo, other])
    assert info.value.name == "echo"
    assert "test_function_tool.echo" in str(info.value)
    assert "other" in str(info.value)


def test_toolset_rejects_plain_functions() -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="decorate it with @function_tool"):
        ToolSet([plain])  # type: ignore[list-item]


def test_decorating_twice_or_a_staticmethod_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="already a tool"):
        function_tool(echo)
    with pytest.raises(ToolDefinitionError, match="cannot wrap a staticmethod"):
        function_tool(staticmethod(lambda x: x))


def test_tool_is_frozen() -> None:
    with pytest.raises(AttributeError):
        echo.bound_to = object()  # type: ignore[misc]
