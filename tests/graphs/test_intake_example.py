"""The intake example: a front-desk tool runs a TaskGroup of prebuilt tasks, a revisit included."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import flowkit as fk
from flowkit.cli import main
from flowkit.loader import load_graph
from flowkit.tasks import GetDateOfBirthTask, GetNameTask, GetPhoneNumberTask
from flowkit.testing import FakeLLM, FakeLLMRequest, FakeTTS, Harness, RunResult
from flowkit.testing.memory_io import MemoryIO

EXAMPLE = Path(__file__).parents[2] / "examples" / "intake_agent.py"
STARTED = "has started: follow its instructions until it is complete."
CAPTURE = {
    subject: {f"update_{subject}", f"confirm_{subject}", f"decline_{subject}_capture"}
    for subject in ("name", "date_of_birth", "phone_number")
}


def live_job(**extra: object) -> fk.JobContext:
    """A job whose room stays open (no audio) while the harness sends text turns."""
    return fk.JobContext(io=MemoryIO(live=True), extra=dict(extra))


def revisit_choices(request: FakeLLMRequest) -> list[str] | None:
    """The task ids ``revisit_tasks`` offers in ``request``, or ``None`` if it is not offered."""
    for tool in request.tools:
        if tool.name == "revisit_tasks":
            return list(tool.parameters["properties"]["task_ids"]["items"]["enum"])
    return None


def test_intake_example_is_valid_and_drawn() -> None:
    assert load_graph(EXAMPLE).problems() == []
    result = CliRunner().invoke(main, ["viz", str(EXAMPLE), "-f", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart")


@pytest.mark.looptime
async def test_intake_runs_the_group_goes_back_to_the_name_and_books() -> None:
    voice = FakeTTS(sample_rate=24_000)
    job = live_job(tts=voice)
    graph = load_graph(EXAMPLE, job)
    model = graph.nodes["llm"].params.provider  # type: ignore[attr-defined]
    assert isinstance(model, FakeLLM)
    said = [
        "Hi, I'd like to register as a new patient, for a check-up.",
        "It's Jon Smith.",
        "Yes, that's right.",
        "March 3rd, 1985.",
        "Yes.",
        "Before that: I gave my name wrong. It's John Smith, with an h.",
        "Yes.",
        "It's 253 0000.",
        "650 253 0000",
        "Yes, that's right.",
    ]
    runs: list[RunResult] = []
    # Each turn's requests: what the LLM was sent while it answered that turn.
    requests: list[list[FakeLLMRequest]] = []
    async with Harness(graph, job=job) as agent:
        for words in said:
            before = len(model.requests)
            runs.append(await agent.run(words))
            requests.append(model.requests[before:])
    (start, name_given, name_yes, dob_given, dob_yes, revisit, renamed_yes, short_phone,
     phone_given, phone_yes) = runs

    # The front desk's tool runs the group: the call is answered with the first task's start.
    expect = start.expect
    expect.next_event().is_function_call(
        name="register_patient", arguments={"reason": "a check-up"})
    expect.next_event().is_function_call_output(output=f"GetNameTask {STARTED}")
    name_task = expect.next_event().is_agent_handoff().agent
    assert isinstance(name_task, GetNameTask)
    assert name_task.parts == ("first_name", "last_name")  # the example's factory
    expect.next_event().is_message(content="Happy to help. What is your first and last name?")
    expect.no_more_events()
    front, asking = requests[0]
    assert front.history[0].content.startswith("You are the front desk")
    assert {t.name for t in front.tools} == {"register_patient"}
    # The task's request: its instructions and tools, no way back from the first task, and
    # the caller's words from before it (one history).
    assert asking.history[0].content == name_task.instructions
    assert "first and last name" in name_task.instructions
    assert {t.name for t in asking.tools} == CAPTURE["name"]
    assert revisit_choices(asking) is None
    assert [m.content for m in asking.history if m.role == "user"] == said[:1]

    # Name: recorded and read back in one turn, confirmed in the next.
    expect = name_given.expect
    expect.next_event().is_function_call(
        name="update_name", arguments={"first_name": "Jon", "last_name": "Smith"})
    recorded = expect.next_event().is_function_call_output(is_error=False)
    assert recorded.output.startswith("Recorded the name: Jon Smith.")
    expect.next_event().is_message(content="I have Jon Smith. Is that right?")
    expect.no_more_events()
    assert all(revisit_choices(r) is None for r in requests[1])

    expect = name_yes.expect
    expect.next_event().is_function_call(name="confirm_name", arguments={})
    expect.next_event().is_function_call_output(
        output=f"GetNameTask is complete. GetDateOfBirthTask {STARTED}")
    handoff = expect.next_event().is_agent_handoff()
    dob_task = handoff.agent
    assert handoff.ended is name_task and isinstance(dob_task, GetDateOfBirthTask)
    expect.next_event().is_message(content="Thank you. What is your date of birth?")
    expect.no_more_events()
    # From the second task on, the LLM may go back to the tasks run before.
    assert requests[2][-1].history[0].content == dob_task.instructions
    assert {t.name for t in requests[2][-1].tools} == CAPTURE["date_of_birth"] | {
        "revisit_tasks"}
    assert revisit_choices(requests[2][-1]) == ["name"]

    # Date of birth: the spoken date goes to the tool as ISO, read back with the month.
    expect = dob_given.expect
    expect.next_event().is_function_call(
        name="update_date_of_birth", arguments={"date_of_birth": "1985-03-03"})
    recorded = expect.next_event().is_function_call_output(is_error=False)
    assert recorded.output.startswith("Recorded the date of birth: March 3, 1985")
    expect.next_event().is_message(content="I have March 3rd, 1985. Is that right?")
    expect.no_more_events()

    expect = dob_yes.expect
    expect.next_event().is_function_call(name="confirm_date_of_birth", arguments={})
    expect.next_event().is_function_call_output(
        output=f"GetDateOfBirthTask is complete. GetPhoneNumberTask {STARTED}")
    handoff = expect.next_event().is_agent_handoff()
    phone_task = handoff.agent
    assert handoff.ended is dob_task and isinstance(phone_task, GetPhoneNumberTask)
    expect.next_event().is_message(content="And what phone number can we reach you at?")
    expect.no_more_events()
    assert requests[4][-1].history[0].content == phone_task.instructions
    assert revisit_choices(requests[4][-1]) == ["dob", "name"]

    # Asked for the phone number, the caller corrects their name: the LLM goes back to the
    # name task, which runs again (a new one) and records the name the caller just gave.
    expect = revisit.expect
    expect.next_event().is_function_call(name="revisit_tasks", arguments={"task_ids": ["name"]})
    expect.next_event().is_function_call_output(
        is_error=False,
        output=f"GetPhoneNumberTask ended (going back to name). GetNameTask {STARTED}")
    handoff = expect.next_event().is_agent_handoff()
    name_again = handoff.agent
    assert handoff.ended is phone_task
    assert isinstance(name_again, GetNameTask) and name_again is not name_task
    expect.next_event().is_function_call(
        name="update_name", arguments={"first_name": "John", "last_name": "Smith"})
    recorded = expect.next_event().is_function_call_output(is_error=False)
    assert recorded.output.startswith("Recorded the name: John Smith.")
    expect.next_event().is_message(content="I have John Smith. Is that right?")
    expect.no_more_events()
    systems = [r.history[0].content for r in requests[5]]
    assert systems == [phone_task.instructions, name_again.instructions, name_again.instructions]
    # The name task run again may go back to the date of birth, not to the phone number:
    # that step was left, not done.
    assert revisit_choices(requests[5][-1]) == ["dob"]

    # Once the name is confirmed the group resumes at the phone number (a new task), not at
    # the date of birth.
    expect = renamed_yes.expect
    expect.next_event().is_function_call(name="confirm_name", arguments={})
    expect.next_event().is_function_call_output(
        output=f"GetNameTask is complete. GetPhoneNumberTask {STARTED}")
    handoff = expect.next_event().is_agent_handoff()
    phone_again = handoff.agent
    assert handoff.ended is name_again
    assert isinstance(phone_again, GetPhoneNumberTask) and phone_again is not phone_task
    expect.next_event().is_message(content="And what phone number can we reach you at?")
    expect.no_more_events()
    assert requests[6][-1].history[0].content == phone_again.instructions

    # A number without its area code is refused by the task's check; the LLM asks again.
    expect = short_phone.expect
    expect.next_event().is_function_call(
        name="update_phone_number", arguments={"phone_number": "253 0000"})
    refused = expect.next_event().is_function_call_output(is_error=True)
    assert "is not a valid phone number" in refused.output
    expect.next_event().is_message(contains="with the area code")
    expect.no_more_events()

    expect = phone_given.expect
    expect.next_event().is_function_call(
        name="update_phone_number", arguments={"phone_number": "650 253 0000"})
    recorded = expect.next_event().is_function_call_output(is_error=False)
    assert recorded.output.startswith("Recorded the phone number: (650) 253-0000")
    expect.next_event().is_message(content="I have 6 5 0, 2 5 3, 0 0 0 0. Is that right?")
    expect.no_more_events()

    # The last confirmation ends the group: register_patient books with its results, and
    # its answer (with the values as the tasks stored them) goes back to the front desk.
    expect = phone_yes.expect
    expect.next_event().is_function_call(name="confirm_phone_number", arguments={})
    expect.next_event().is_message(content="One moment while I book that.")  # ctx.say
    booked = (
        "registered John Smith, born 1985-03-03, phone +16502530000; "
        "booked a check-up on Monday at 9:30 am"
    )
    expect.next_event().is_function_call_output(output=booked, is_error=False)
    handoff = expect.next_event().is_agent_handoff()
    assert handoff.agent is None and handoff.ended is phone_again  # back to the front desk
    answer = expect.next_event().is_message(contains="+16502530000")
    assert "1985-03-03" in answer.content and "John Smith" in answer.content
    expect.no_more_events()
    last = requests[9][-1]
    assert last.history[0].content.startswith("You are the front desk")
    assert {t.name for t in last.tools} == {"register_patient"}
    # Spoken: what the tool said while it booked, then the answer (its first sentence at
    # least: the harness returns once the text is written, not once it is all spoken).
    assert voice.texts.index("One moment while I book that.") == len(voice.texts) - 2
    assert answer.content.startswith(voice.texts[-1]) and "+16502530000" in voice.texts[-1]

    # Every request of the call, by who the LLM played: the date of birth was asked once.
    plays = {
        name_task.instructions: "name",
        dob_task.instructions: "dob",
        phone_task.instructions: "phone",
    }
    roles = [plays.get(r.history[0].content, "desk") for r in model.requests]
    assert roles == [
        "desk", "name",  # the caller asks to register; the name task asks
        "name", "name", "name", "dob",  # name read back, confirmed; the date asked
        "dob", "dob", "dob", "phone",  # date read back, confirmed; the number asked
        "phone", "name", "name",  # the way back: the name task again, the new name read back
        "name", "phone",  # confirmed; the number asked again
        "phone", "phone", "phone", "phone",  # a number refused, then one read back
        "phone", "desk",  # confirmed; the front desk answers with the booking
    ]
    registration = job.extra["registration"]
    assert registration.steps == ["name", "dob", "name", "phone"]  # in completion order
    assert (registration.name, registration.date_of_birth, registration.phone) == (
        "John Smith", "1985-03-03", "+16502530000")
