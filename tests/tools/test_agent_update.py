"""AgentUpdate on its own: what it refuses, and what it does to a Toolbox."""

import logging
from dataclasses import dataclass, field

import pytest

from flowkit.tools import AgentUpdate, DuplicateToolError, FunctionTool, Toolbox, function_tool

LOG = logging.getLogger("test")


@function_tool
async def lookup() -> str:
    """Look something up."""
    return "found"


@function_tool
async def refund(amount: float) -> str:
    """Refund an amount."""
    return f"refunded {amount}"


@dataclass
class Agent:
    instructions: str
    tools: list[FunctionTool] = field(default_factory=list)


def test_an_update_that_changes_nothing_or_too_much_is_refused() -> None:
    with pytest.raises(ValueError, match="changes nothing; give agent=, instructions= or tools="):
        AgentUpdate()
    with pytest.raises(ValueError, match="give either agent, or instructions and/or tools"):
        AgentUpdate(agent=Agent("x"), instructions="y")
    with pytest.raises(ValueError, match="not an agent; give an object with instructions"):
        AgentUpdate(agent="billing")  # type: ignore[arg-type]
    with pytest.raises(DuplicateToolError):
        AgentUpdate(tools=(lookup, lookup))


def test_instructions_alone_keep_the_tools_and_tools_alone_keep_the_instructions() -> None:
    box = Toolbox([lookup])
    assert AgentUpdate(instructions="Be formal.").applied(box, "Be brief.", LOG) == "Be formal."
    assert box.functions.names == ["lookup"]
    assert AgentUpdate(tools=(refund,)).applied(box, "Be formal.", LOG) == "Be formal."
    assert box.functions.names == ["refund"]
    both = AgentUpdate(instructions="Refunds.", tools=(lookup, refund))
    assert both.applied(box, "Be formal.", LOG) == "Refunds."
    assert box.functions.names == ["lookup", "refund"]


def test_an_agent_hands_over_its_instructions_and_tools() -> None:
    box = Toolbox([lookup])
    update = AgentUpdate(agent=Agent("You handle billing.", [refund]))
    assert update.applied(box, "Front desk.", LOG) == "You handle billing."
    assert box.functions.names == ["refund"]
