"""Following a message type through a running graph: :class:`Following`.

The usage ledger, the turn timeline, the live view and the console each listen to every
output that carries some message type, wherever it is produced, linked or not, and stop
listening when they detach. :class:`Following` holds those subscriptions and which outputs
they are on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactivex.abc import DisposableBase

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner

__all__ = ["Following"]


class Following:
    """Subscriptions to a running graph's outputs, found by the type they carry.

    Attributes:
        ports: Every output followed so far, as ``"node.port"`` (kept after :meth:`dispose`).
    """

    def __init__(self) -> None:
        self.ports: list[str] = []
        self._subscriptions: list[DisposableBase] = []

    def follow(
        self, runner: GraphRunner, kind: type | tuple[type, ...], on_next: Callable[[Any], None]
    ) -> Following:
        """Subscribe ``on_next`` to every output of ``runner`` declared to carry ``kind``.

        The runner must have built its streams (after ``await runner.start()``).

        Args:
            runner: The running graph.
            kind: The message type (or types), as in ``GraphRunner.outputs_carrying``.
            on_next: Called with each message.

        Returns:
            This object, to chain or keep.
        """
        for ref in runner.outputs_carrying(kind):
            self.ports.append(ref)
            self._subscriptions.append(runner.observe(ref).subscribe(on_next))
        return self

    def dispose(self) -> None:
        """Unsubscribe from every output followed."""
        for subscription in self._subscriptions:
            subscription.dispose()
        self._subscriptions.clear()
