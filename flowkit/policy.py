"""What the runtime does when a node fails."""

from __future__ import annotations

import enum

__all__ = ["ErrorPolicy"]


class ErrorPolicy(enum.StrEnum):
    """How the runtime handles an exception raised inside a node.

    Every error is caught at the node's boundary, logged with the node's name and sent to the
    runner's error stream first; then:

    - ``SKIP``: drop the message that failed and carry on. A function node keeps its state. An
      Rx chain is ended by an ``on_error`` (that is Rx's contract), so an Rx or async node is
      wired again, as for ``RESTART``, without counting towards ``max_restarts``.
    - ``RESTART``: dispose the node's subscriptions and wire or run it again on the same
      inputs, at most ``max_restarts`` times; after that the graph ends.
    - ``END_GRAPH``: close the whole graph; the runner's ``wait()`` raises
      :class:`~flowkit.runtime.errors.GraphFailed`. Other graphs (other jobs) are untouched.
    """

    SKIP = "skip"
    RESTART = "restart"
    END_GRAPH = "end_graph"
