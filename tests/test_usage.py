"""Provider usage: what a running graph's providers consumed, from their Metrics messages."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Sequence

import pytest
from reactivex import Observable

import flowkit as fk


def llm(prompt: float, completion: float, *, node: str = "brain", provider: str = "acme",
        cancelled: bool = False) -> fk.Metrics:
    return fk.Metrics(
        kind="llm", node=node,
        values={"ttft": 0.25, "duration": 1.0, "prompt_tokens": prompt,
                "completion_tokens": completion, "tokens_per_second": 30.0},
        labels={"provider": provider, "cancelled": cancelled},
    )


def tts(characters: float, seconds: float) -> fk.Metrics:
    return fk.Metrics(
        kind="tts", node="voice",
        values={"ttfa": 0.1, "duration": 0.3, "characters": characters,
                "audio_duration": seconds},
        labels={"provider": "speaky"},
    )


class Reporter(fk.Node):
    """Sends its messages on ``metrics`` (linked) and ``more`` (linked to nothing)."""

    metrics: fk.Out[fk.Metrics] = fk.Out(default=True)
    more: fk.Out[fk.Metrics]

    def __init__(self, linked: list[fk.Metrics], unlinked: list[fk.Metrics]) -> None:
        super().__init__()
        self.linked, self.unlinked = linked, unlinked

    async def run(self) -> None:
        for message in self.linked:
            self.metrics.send(message)
            await asyncio.sleep(0)
        for message in self.unlinked:
            self.more.send(message)


class Relay(fk.Node):
    """Passes metrics on: the same objects, as a collecting node might."""

    metrics: fk.In[fk.Metrics]
    out: fk.Out[fk.Metrics]

    def wire(self, metrics: Observable[fk.Metrics]) -> Observable[fk.Metrics]:
        return metrics


class Drain(fk.Node):
    metrics: fk.In[fk.Metrics]

    async def run(self, metrics: AsyncIterator[fk.Metrics]) -> None:
        async for _ in metrics:
            pass


def graph(linked: list[fk.Metrics], unlinked: Sequence[fk.Metrics] = ()) -> fk.Graph:
    g = fk.Graph("usage")
    reporter = g.add(Reporter(linked, list(unlinked)), name="reporter")
    relay = g.add(Relay(), name="relay")
    reporter >> relay >> g.add(Drain(), name="drain")
    return g


async def test_every_metrics_port_is_counted_once_per_message_and_latencies_are_left_out() -> None:
    job = fk.JobContext()
    runner = fk.GraphRunner(
        graph([llm(40, 12), tts(20, 1.5), llm(60, 8, cancelled=True)], [tts(5, 0.5)]), job=job
    )
    await runner.run()
    usage = runner.usage.summary()
    by_kind = {p.kind: p for p in usage.providers}
    # The relay's output carried the same three messages: not counted again.
    assert (by_kind["llm"].requests, by_kind["tts"].requests) == (2, 2)
    assert by_kind["llm"] == fk.ProviderUsage(
        kind="llm", node="brain", provider="acme", requests=2,
        values={"prompt_tokens": 100.0, "completion_tokens": 20.0},
    )
    assert by_kind["tts"].values == {"characters": 25.0, "audio_duration": 2.0}
    assert usage.total("prompt_tokens") == 100.0
    assert usage.total("audio_duration", kind="stt") == 0.0
    # The job's ledger has what its graph counted.
    assert job.usage.summary() == usage


async def test_a_job_adds_up_its_graphs_and_counts_into_a_worker_total() -> None:
    worker_total = fk.UsageLedger()
    jobs = [fk.JobContext(job_id="a"), fk.JobContext(job_id="b")]
    for job in jobs:
        job.usage.into = worker_total
    await fk.GraphRunner(graph([llm(10, 1)]), job=jobs[0]).run()
    await fk.GraphRunner(graph([llm(20, 2)]), job=jobs[0]).run()  # the job's second graph
    await fk.GraphRunner(graph([llm(5, 5, provider="other")]), job=jobs[1]).run()
    assert jobs[0].usage.summary().total("prompt_tokens") == 30.0
    assert jobs[1].usage.summary().total("prompt_tokens") == 5.0
    total = worker_total.summary()
    assert [(p.provider, p.requests, p.values["prompt_tokens"]) for p in total.providers] == [
        ("acme", 2, 30.0), ("other", 1, 5.0)
    ]


def test_the_summary_describes_itself_in_one_line_and_refuses_unknown_values() -> None:
    ledger = fk.UsageLedger()
    assert ledger.summary().describe() == "no provider requests"
    ledger.add(llm(812, 40))
    ledger.add(tts(120, 7.5))
    assert ledger.summary().describe() == (
        "llm 'brain' (acme): 1 request, 812 prompt_tokens, 40 completion_tokens; "
        "tts 'voice' (speaky): 1 request, 120 characters, 7.5 audio_duration"
    )
    with pytest.raises(KeyError, match="'ttft' is not a usage value; use one of"):
        ledger.summary().total("ttft")


def test_a_message_without_a_provider_label_is_counted_under_no_provider() -> None:
    ledger = fk.UsageLedger()
    ledger.add(fk.Metrics(kind="stt", node="ears", values={"audio_duration": 2.0}))
    ledger.add(fk.Metrics(kind="stt", node="ears", values={"audio_duration": 1.0}))
    [usage] = ledger.summary().providers
    assert (usage.provider, usage.requests, usage.values) == ("", 2, {"audio_duration": 3.0})
    assert ledger.summary().describe() == "stt 'ears': 2 requests, 3.0 audio_duration"


def test_the_ledger_does_not_keep_what_it_counted_alive() -> None:
    # A ledger per running graph (and per job) lives as long as its calls: holding the
    # messages it counted would grow every session's memory with each request.
    ledger = fk.UsageLedger()
    first = llm(10, 2)
    seen = weakref.ref(first)
    ledger.add(first)
    ledger.add(first)  # passed on by another node: the same object, counted once
    del first
    gc.collect()
    assert seen() is None
    # A new message may reuse the freed one's id: it is still a new request.
    for _ in range(20):
        ledger.add(llm(10, 2))
    assert ledger.summary().total("prompt_tokens") == 210
    assert ledger.summary().providers[0].requests == 21
