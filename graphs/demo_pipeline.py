"""A small demo graph built from flowkit core alone: no audio, no providers, runs anywhere.

    words ─▶ clean (subgraph: strip ─▶ lower) ─▶ length ─▶ shrink ─▶ split ─▶ report
                                                             ▲           │
                                                             └── big ────┘  (feedback loop)

Each word is cleaned, measured, and halved round the loop until it is at most ``limit``.

    flowkit validate graphs/demo_pipeline.py
    flowkit viz graphs/demo_pipeline.py --format mermaid
"""

from __future__ import annotations

import reactivex as rx
from reactivex import operators as ops

import flowkit as fk


class Words(fk.Node):
    """Emit the words of a sentence, one message each."""

    class Params(fk.NodeParams):
        text: str = "Graphs, you can SEE and check!"

    params: Params
    out: fk.Out[str]

    def wire(self) -> rx.Observable[str]:
        return rx.from_iterable(self.params.text.split())


class Split(fk.Node):
    """Send values above ``limit`` back round the loop and the rest on."""

    class Params(fk.NodeParams):
        limit: int = 2

    params: Params
    value: fk.In[int]
    small: fk.Out[int] = fk.Out(default=True, doc="values at most limit")
    big: fk.Out[int] = fk.Out(doc="values above limit, to go round again")

    def wire(self, value: rx.Observable[int]) -> dict[str, rx.Observable[int]]:
        limit = self.params.limit
        return {
            "small": value.pipe(ops.filter(lambda n: n <= limit)),
            "big": value.pipe(ops.filter(lambda n: n > limit)),
        }


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
    halve = g.add(shrink())
    split = g.add(Split(limit=2))
    words >> cleaned >> length() >> halve >> split >> report()
    g.connect(split.big, halve.n, feedback=True)
    return g
