"""What a running graph's providers consumed: tokens, characters, seconds of audio.

Every provider node reports each request on its ``metrics`` output (a
:class:`~flowkit.messages.Metrics`, kind ``"llm"``, ``"tts"``, ``"stt"`` or ``"realtime"``).
:class:`UsageLedger` listens to every output of a running graph that carries them, linked or
not, and adds up the figures that are billed, per node and provider: the usage of a job,
for cost accounting and quotas (LiveKit Agents users get the same from its
``UsageCollector``).

============== =================================================================
value          what it counts
============== =================================================================
prompt_tokens      tokens an LLM read (history, tools, instructions)
completion_tokens  tokens an LLM wrote (counted as streamed deltas when the
                   provider reports no usage)
input_tokens       tokens a realtime model read (audio and text)
output_tokens      tokens a realtime model wrote (audio and text)
characters         characters a TTS spoke
audio_duration     seconds of audio a TTS made; for an STT, the seconds of audio
                   each request carried (a batch recogniser's utterance with its
                   padding and trailing silence), or the speech the VAD measured
                   when the recogniser does not say
============== =================================================================

A cancelled request counts: a provider bills what it did before it was stopped. The
latencies in the same messages (``ttft``, ``duration``, ...) are not usage and are left out.
A streaming STT service may bill every second streamed to it, silence included (the job's
length), not only the utterances counted here.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pydantic

from flowkit.following import Following
from flowkit.messages import Metrics

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner

__all__ = ["USAGE_VALUES", "ProviderUsage", "UsageLedger", "UsageSummary"]

USAGE_VALUES: tuple[str, ...] = (
    "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "characters",
    "audio_duration",
)
"""The :class:`~flowkit.messages.Metrics` values a :class:`UsageLedger` adds up."""


class ProviderUsage(pydantic.BaseModel):
    """What one node's provider consumed.

    Attributes:
        kind: ``"llm"``, ``"tts"``, ``"stt"``, ``"realtime"`` (the metrics' kind).
        node: The node that reported it.
        provider: The provider's name (the metrics' ``provider`` label; ``""`` if none).
        requests: Requests reported (cancelled ones included).
        values: The totals of the :data:`USAGE_VALUES` reported, by name.
    """

    model_config = pydantic.ConfigDict(frozen=True)

    kind: str
    node: str
    provider: str
    requests: int
    values: dict[str, float]


class UsageSummary(pydantic.BaseModel):
    """A graph's (or a worker's) usage: one entry per node and provider, in order seen."""

    model_config = pydantic.ConfigDict(frozen=True)

    providers: tuple[ProviderUsage, ...] = ()

    def total(self, value: str, kind: str | None = None) -> float:
        """The sum of ``value`` over every provider (of ``kind`` only, if given).

        Args:
            value: One of :data:`USAGE_VALUES`.
            kind: Only providers of this kind (``"llm"``, ...).

        Raises:
            KeyError: ``value`` is not one of :data:`USAGE_VALUES`.
        """
        if value not in USAGE_VALUES:
            raise KeyError(f"{value!r} is not a usage value; use one of {list(USAGE_VALUES)}")
        return sum(
            p.values.get(value, 0.0) for p in self.providers if kind is None or p.kind == kind
        )

    def describe(self) -> str:
        """One line for a log: ``llm 'llm' (openai): 2 requests, 812 prompt_tokens, ...``."""
        if not self.providers:
            return "no provider requests"
        parts = []
        for p in self.providers:
            figures = [f"{p.requests} request{'s' if p.requests != 1 else ''}"]
            figures += [f"{_figure(name, p.values[name])} {name}" for name in p.values]
            who = f" ({p.provider})" if p.provider else ""
            parts.append(f"{p.kind} {p.node!r}{who}: {', '.join(figures)}")
        return "; ".join(parts)


def _figure(name: str, value: float) -> str:
    return f"{value:.1f}" if name == "audio_duration" else f"{value:.0f}"


class _Tally:
    __slots__ = ("requests", "values")

    def __init__(self) -> None:
        self.requests = 0
        self.values: dict[str, float] = {}


class UsageLedger:
    """Adds up the usage in the :class:`~flowkit.messages.Metrics` of running graphs.

    Every :class:`~flowkit.runtime.runner.GraphRunner` keeps one (``runner.usage``), counting
    from its start, and counts into its job's (``job.usage``, the job's total, which a
    shutdown callback can read); a worker's jobs count into the worker's, which its
    ``/metrics`` serves. Read :meth:`summary` at any time.

    Args:
        into: A ledger that counts everything this one counts too.
    """

    def __init__(self, into: UsageLedger | None = None) -> None:
        self.into = into
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        # A message passed on by another node is the same object: it is counted once. The
        # ledger remembers each message it counted for as long as anything else holds it
        # (a relay's queue, a node's list) and no longer: a weak value per id, dropped when
        # the message is freed, so an id reused by a later message is not mistaken for it.
        # Keeping the messages themselves (a deque of the last 64, before) held each
        # graph's last 64 metrics: 0.3 MiB/min more RSS growth at 50 sessions in
        # bench/voice_sessions.py (docs/performance.md, item 17).
        self._counted: weakref.WeakValueDictionary[int, Metrics] = (
            weakref.WeakValueDictionary()
        )
        self._following = Following()

    @property
    def ports(self) -> list[str]:
        """Every output listened to, as ``"node.port"``."""
        return self._following.ports

    def listen(self, runner: GraphRunner) -> None:
        """Subscribe to every output of ``runner`` declared to carry :class:`Metrics`.

        The runner must have built its streams (``GraphRunner.start`` calls this before the
        graph's tasks run, so nothing is missed).
        """
        self._following.follow(runner, Metrics, self.add)

    def detach(self) -> None:
        """Stop listening (the totals stay)."""
        self._following.dispose()

    def add(self, metrics: Metrics) -> None:
        """Count one request's figures (a message already counted is skipped)."""
        ident = id(metrics)
        if self._counted.get(ident) is metrics:
            return
        self._counted[ident] = metrics
        provider = metrics.labels.get("provider", "")
        key = (metrics.kind, metrics.node, provider if isinstance(provider, str) else "")
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        tally.requests += 1
        for name in USAGE_VALUES:
            value = metrics.values.get(name)
            if value is not None:
                tally.values[name] = tally.values.get(name, 0.0) + value
        if self.into is not None:
            self.into.add(metrics)

    def summary(self) -> UsageSummary:
        """The totals so far."""
        return UsageSummary(providers=tuple(_usages(self._tallies.items())))


def _usages(
    tallies: Iterable[tuple[tuple[str, str, str], _Tally]],
) -> Iterable[ProviderUsage]:
    for (kind, node, provider), tally in tallies:
        yield ProviderUsage(
            kind=kind, node=node, provider=provider, requests=tally.requests,
            values=dict(tally.values),
        )
