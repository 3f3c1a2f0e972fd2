"""A small demo graph built from flowkit core alone: no audio, no providers, no network.

    words ─▶ clean (subgraph: strip ─▶ lower) ─▶ length ─▶ fit ─▶ report
                                                           │ ▲
                                                      over │ │ again (a declared feedback loop)
                                                           ▼ │
                                                          shrink

Each word is cleaned and measured; a length above ``limit`` goes round the loop, halved
each time, until it fits. Run it with ``flowkit.GraphRunner(build(job)).run()``.

    flowkit validate graphs/demo_pipeline.py
    flowkit viz graphs/demo_pipeline.py --format mermaid
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import reactivex as rx

import flowkit as fk


class Words(fk.Node):
    """Emit the words of a sentence, one message each."""

    class Params(fk.NodeParams):
        text: str = "Graphs, you can SEE and check!"

    params: Params
    out: fk.Out[str]

    def wire(self) -> rx.Observable[str]:
        return rx.from_iterable(self.params.text.split())


class Fit(fk.Node):
    """Pass on values at most ``limit``; send bigger ones round the loop until they fit.

    It owns the loop, so it ends it: once its input has ended and every value it sent
    round has come back, it closes ``over`` (the runtime then ends ``again`` after it).
    """

    class Params(fk.NodeParams):
        limit: int = 2

    params: Params
    value: fk.In[int] = fk.In(default=True)
    again: fk.In[int] = fk.In(feedback=True, doc="values back from the loop")
    out: fk.Out[int] = fk.Out(default=True, doc="values at most limit")
    over: fk.Out[int] = fk.Out(doc="values above limit, sent round the loop")

    async def run(self, value: AsyncIterator[int], again: AsyncIterator[int]) -> None:
        limit = self.params.limit
        in_loop = 0
        value_ended = loop_closed = False

        def route(n: int) -> None:
            nonlocal in_loop
            if n <= limit:
                self.out.send(n)
            else:
                in_loop += 1
                self.over.send(n)

        def close_loop_when_idle() -> None:
            nonlocal loop_closed
            if value_ended and in_loop == 0 and not loop_closed:
                loop_closed = True
                self.over.close()

        async def take_back() -> None:
            nonlocal in_loop
            async for n in again:
                in_loop -= 1
                route(n)
                close_loop_when_idle()

        # Both inputs at once: values come back round the loop while new ones arrive.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(take_back())
            async for n in value:
                route(n)
            value_ended = True
            close_loop_when_idle()


@fk.node
def strip(word: str, *, chars: str = ".,!?") -> str:
    """Strip punctuation from both ends of a word."""
    return word.strip(chars)


@fk.node
def lower(word: str) -> str:
    """Lower-case a word."""
    return word.lower()


@fk.node
def length(word: str) -> int:
    """The number of characters in a word."""
    return len(word)


@fk.node
def shrink(n: int) -> int:
    """Halve a number."""
    return n // 2


@fk.node
def report(n: int) -> None:
    """Print what came out of the loop."""
    print(n)


def clean() -> fk.Graph:
    """A reusable subgraph: strip punctuation, then lower-case."""
    sub = fk.Graph("clean", description="strip punctuation, lower-case")
    first = sub.add(strip())
    last = first >> lower()
    sub.expose("text", first.word)
    sub.expose("out", last.out)
    return sub


def build(job: fk.JobContext) -> fk.Graph:
    g = fk.Graph("demo-pipeline", description="clean words, halve their length until it fits")
    words = g.add(Words(text=job.extra.get("text", Words.Params().text)))
    cleaned = g.add(clean())
    fit = g.add(Fit(limit=2))
    words >> cleaned >> length() >> fit >> report()
    fit.over >> shrink() >> fit.again  # fit.again is In(feedback=True): a declared loop
    return g
