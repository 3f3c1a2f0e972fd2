"""AgentUpdate in a graph: the LLM node and the ToolRouter change the agent in step."""

import dataclasses

import pytest
from support import Collect, Script, collected, offered_tools, system_prompt, tool_call
from support import user_turn as turn

import flowkit as fk
from flowkit.nodes.llm import LLM
from flowkit.nodes.tools import ToolRouter
from flowkit.testing import FakeLLM

FRONT_DESK = "You are the front desk."
BILLING = "You handle billing: refunds and invoices."


@fk.function_tool
async def opening_hours() -> str:
    """When the shop is open."""
    return "9 to 5"


@fk.function_tool
async def refund(amount: float) -> str:
    """Refund an amount to the caller.

    Args:
        amount: The amount, in euros.
    """
    return f"refunded {amount:g} euros"


@dataclasses.dataclass
class Billing:
    instructions: str = BILLING
    tools: tuple[fk.FunctionTool, ...] = (refund,)


def _graph(fake: FakeLLM, turns: list[tuple[float, object]],
           updates: list[tuple[float, object]]) -> tuple[fk.Graph, LLM, Collect, Collect]:
    g = fk.Graph("updates")
    llm = g.add(LLM(fake, instructions=FRONT_DESK, tools=[opening_hours]), name="llm")
    g.add(Script(*turns, end_at=10.0), name="turns") >> llm
    router = g.add(ToolRouter([opening_hours]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    g.add(Script(*updates), name="code") >> [llm.updates, router.updates]
    text, results = g.add(Collect(), name="text"), g.add(Collect(), name="results")
    llm >> text
    router.results >> results
    return g, llm, text, results


@pytest.mark.looptime
async def test_a_handoff_from_code_changes_the_llms_agent_and_the_routers_tools() -> None:
    fake = FakeLLM(["Hello, how can I help?", tool_call("c1", "refund", '{"amount": 20}'),
                    "Done: 20 euros are on their way."], ttft=0.0, token_gap=0.0)
    # The caller pressed 2 for billing, say: code hands over between the two turns.
    g, llm, _, results = _graph(
        fake, [(0, turn("hi")), (3.0, lambda: turn("refund my 20 euros"))],
        [(1.0, fk.AgentUpdate(agent=Billing()))],
    )
    await fk.GraphRunner(g).run()
    assert system_prompt(fake, 0) == FRONT_DESK and offered_tools(fake, 0) == {"opening_hours"}
    assert system_prompt(fake, 1) == BILLING and offered_tools(fake, 1) == {"refund"}
    # The router runs the new agent's tool: it switched in step.
    [result] = collected(results)
    assert (result.output, result.is_error) == ("refunded 20 euros", False)
    assert llm.history.instructions == BILLING
    # The history carried over.
    assert [m.content for m in fake.requests[1].history if m.role == "user"] == [
        "hi", "refund my 20 euros",
    ]


@pytest.mark.looptime
async def test_instructions_and_tools_change_from_code_each_on_its_own() -> None:
    fake = FakeLLM(["One.", "Two.", tool_call("c1", "opening_hours"), "Three."], ttft=0.0,
                   token_gap=0.0)
    g, llm, _, results = _graph(
        fake,
        [(0, turn("one")), (2.0, lambda: turn("two")), (4.0, lambda: turn("three"))],
        [(1.0, fk.AgentUpdate(instructions="The caller is Ana, a gold member.")),
         (3.0, fk.AgentUpdate(tools=(opening_hours, refund)))],
    )
    await fk.GraphRunner(g).run()
    assert system_prompt(fake, 1) == "The caller is Ana, a gold member."
    assert offered_tools(fake, 1) == {"opening_hours"}  # the tools stayed
    assert system_prompt(fake, 2) == "The caller is Ana, a gold member."  # and these did
    assert offered_tools(fake, 2) == {"opening_hours", "refund"}
    assert [r.output for r in collected(results)] == ["9 to 5"]
    assert llm.history.instructions == "The caller is Ana, a gold member."


class GetEmail(fk.AgentTask[str]):
    instructions = "Ask for the email address."

    @fk.function_tool
    async def email_given(self, email: str) -> None:
        """The user gave their email address."""
        self.complete(email)


@fk.function_tool
async def subscribe(ctx: fk.RunContext) -> str:
    """Subscribe the caller to the newsletter."""
    return f"subscribed {await ctx.run_task(GetEmail())}"


@pytest.mark.looptime
async def test_an_update_while_a_task_runs_changes_the_task_and_not_the_agent_kept_aside(
) -> None:
    fake = FakeLLM([
        tool_call("c1", "subscribe"), "Your email?",
        tool_call("c2", "email_given", '{"email": "ana@example.com"}'), "Subscribed.",
    ], ttft=0.0, token_gap=0.0)
    g = fk.Graph("task-update")
    llm = g.add(LLM(fake, instructions=FRONT_DESK, tools=[subscribe]), name="llm")
    g.add(Script((0, turn("subscribe me")), (3.0, lambda: turn("ana@example.com")),
                 end_at=8.0), name="turns") >> llm
    router = g.add(ToolRouter([subscribe]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    spell = fk.AgentUpdate(instructions="Ask for the email address; have it spelled.")
    g.add(Script((1.0, spell)), name="code") >> [llm.updates, router.updates]
    await fk.GraphRunner(g).run()
    assert system_prompt(fake, 1) == GetEmail.instructions
    assert system_prompt(fake, 2) == spell.instructions  # the task's, changed
    assert offered_tools(fake, 2) == {"email_given"}
    assert system_prompt(fake, 3) == FRONT_DESK  # the agent kept aside came back as it was
    assert llm.history.instructions == FRONT_DESK


def _wired(to_model: bool, to_router: bool) -> fk.Graph:
    g = fk.Graph("wiring")
    llm = g.add(LLM(FakeLLM([]), instructions=FRONT_DESK, tools=[opening_hours]), name="llm")
    g.add(Script(), name="turns") >> llm
    router = g.add(ToolRouter([opening_hours]), name="router")
    llm.tool_calls >> router >> llm.tool_results
    code = g.add(Script(), name="code")
    if to_model:
        code >> llm.updates
    if to_router:
        code >> router.updates
    llm >> g.add(Collect(), name="text")
    return g


@pytest.mark.parametrize(("to_model", "to_router", "only"), [
    (True, False, "code.out reaches llm.updates only"),
    (False, True, "code.out reaches router.updates only"),
])
def test_updates_that_reach_the_model_or_the_router_alone_are_refused(
    to_model: bool, to_router: bool, only: str
) -> None:
    [problem] = [p for p in _wired(to_model, to_router).problems()
                 if p.kind is fk.ProblemKind.INVALID_LINK]
    assert problem.message == (
        f"agent updates ({only}): llm and router would disagree on the tools; link each "
        "source to both (updates >> [llm.updates, router.updates])"
    )
    assert problem.nodes == ("llm", "router")


def test_updates_that_reach_both_or_neither_are_fine() -> None:
    assert _wired(True, True).problems() == []
    assert _wired(False, False).problems() == []
