"""Typed ports: the named, typed inputs and outputs a node declares on its class.

A port is declared by annotation alone (``out: Out[str]``) or with options
(``audio: In[AudioFrame] = In(format=AudioFormat(16_000))``). The class-level object is a
template; every node instance gets its own bound copy, which knows its node and name and is
what ``>>`` links. At run time the runner attaches each bound output to its stream, so an
async node can ``send`` on it.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

if TYPE_CHECKING:
    from flowkit.node import Node
    from flowkit.runtime.streams import PortStream

__all__ = ["AudioFormat", "In", "Linkable", "Out", "Overflow", "Port"]

T = TypeVar("T")
N = TypeVar("N", bound="Node")
P = TypeVar("P", bound="In[Any]")


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The format of audio on a port, like a GStreamer caps: sample rate and channel count.

    Attributes:
        sample_rate: Samples per second per channel.
        num_channels: Interleaved channels per frame.
    """

    sample_rate: int
    num_channels: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.num_channels <= 0:
            raise ValueError(
                f"AudioFormat({self.sample_rate}, {self.num_channels}): sample rate and channel "
                "count must be positive"
            )

    def __str__(self) -> str:
        channels = {1: "mono", 2: "stereo"}.get(self.num_channels, f"{self.num_channels} ch")
        return f"{self.sample_rate / 1000:g} kHz {channels}"


class Overflow(enum.StrEnum):
    """What a bounded input queue does when a message arrives and it is full.

    ``BLOCK`` makes an async producer that uses ``await out.put(x)`` wait for room; a
    producer that pushes synchronously cannot wait, so the message is kept anyway and
    counted as an overflow (nothing is lost, the bound is exceeded and measured).
    """

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class Linkable:
    """What can stand on the left of ``>>``: an output port, a node, a subgraph.

    ``a >> b`` links ``a`` (its default output) to ``b`` (its default input) and returns ``b``;
    see :func:`flowkit.linking.link`.
    """

    @overload
    def __rshift__(self, other: N) -> N: ...
    @overload
    def __rshift__(self, other: type[N]) -> N: ...
    @overload
    def __rshift__(self, other: P) -> P: ...
    @overload
    def __rshift__(self, other: list[Any]) -> list[Any]: ...
    @overload
    def __rshift__(self, other: Any) -> Any: ...
    def __rshift__(self, other: Any) -> Any:
        """Link to a node's default input, an input port, or each item of a list."""
        from flowkit.linking import link

        return link(self, other)


class Port(Generic[T]):
    """Common part of :class:`In` and :class:`Out`.

    Attributes:
        type: The message type, taken from the annotation (``Out[str]`` → ``str``).
        format: The audio format, when the port carries audio with a known format.
        default: Marks the port ``>>`` uses when the node has several of this direction.
        doc: A line of documentation, shown in specs and drawings.
        node: The node this port belongs to (``None`` on a class-level template).
        name: The attribute name of the port on its node class.
    """

    direction: ClassVar[str] = "port"

    def __init__(
        self, *, format: AudioFormat | None = None, default: bool = False, doc: str = ""
    ) -> None:
        self.type: Any = None
        self.format = format
        self.default = default
        self.doc = doc
        self.node: Node | None = None
        self.name = ""

    def _bound(self, node: Node, name: str, type_: Any) -> Port[T]:
        port = copy.copy(self)
        port.node, port.name, port.type = node, name, type_
        return port

    @property
    def qualname(self) -> str:
        """``"node.port"``, as error messages and drawings name the port."""
        owner = self.node.name if self.node is not None and self.node.name else "?"
        return f"{owner}.{self.name}"

    def __repr__(self) -> str:
        from flowkit.typenames import type_name

        fmt = f", {self.format}" if self.format else ""
        return f"<{type(self).__name__}[{type_name(self.type)}] {self.qualname}{fmt}>"


class In(Port[T]):
    """An input port.

    Args:
        format: The audio format this input expects; a producer with another format is an
            error, or gets a converter inserted when the graph allows it.
        required: A required input must have at least one edge for the graph to be valid.
        feedback: Edges into this port close a declared feedback loop (e.g. tool results
            back into the LLM); they are exempt from the cycle check and are delivered on the
            next loop iteration so that a loop never recurses. The node owning the loop ends
            its loop outputs when its other inputs end, which lets the loop complete.
        queue: For async consumers: the bound of the queue between the edge and ``run``.
        overflow: What the queue does when full (see :class:`Overflow`).
        default: Marks the port ``>>`` links when the node has several inputs.
        doc: A line of documentation.
    """

    direction: ClassVar[str] = "input"

    def __init__(
        self,
        *,
        format: AudioFormat | None = None,
        required: bool = True,
        feedback: bool = False,
        queue: int = 256,
        overflow: Overflow = Overflow.BLOCK,
        default: bool = False,
        doc: str = "",
    ) -> None:
        super().__init__(format=format, default=default, doc=doc)
        if queue <= 0:
            raise ValueError(f"In(queue={queue}): the queue bound must be at least 1")
        self.required = required
        self.feedback = feedback
        self.queue = queue
        self.overflow = Overflow(overflow)


class Out(Port[T], Linkable):
    """An output port.

    A node built with ``wire`` returns an observable per output; any node may also push on a
    bound output with :meth:`send` (sync) or :meth:`put` (async, waits while a blocking
    downstream queue is full).
    """

    direction: ClassVar[str] = "output"

    def __init__(
        self, *, format: AudioFormat | None = None, default: bool = False, doc: str = ""
    ) -> None:
        super().__init__(format=format, default=default, doc=doc)
        self._stream: PortStream[T] | None = None

    def _running_stream(self) -> PortStream[T]:
        stream = self._stream
        if stream is None:
            raise RuntimeError(
                f"{self.qualname}: send() was called while the graph is not running; "
                "send only from wire/run code that the runner started"
            )
        return stream

    def send(self, value: T) -> None:
        """Emit ``value`` to every edge out of this port, now."""
        stream = self._stream  # _running_stream() inlined: a call less per message
        if stream is None:
            stream = self._running_stream()  # raises the explained error
        stream.on_next(value)

    def sender(self) -> Callable[[T], None]:
        """The running port's :meth:`send`, bound once, for a callback called per message.

        A transport's per-frame callback that is handed this instead of ``send`` saves a
        Python call per message. It belongs to this run of the graph: a node restarted by
        its error policy runs again and asks again.

        Raises:
            RuntimeError: The graph is not running.
        """
        return self._running_stream().on_next

    def close(self) -> None:
        """End this output now: consumers see it complete (a loop owner ends its loop so)."""
        self._running_stream().on_completed()

    async def put(self, value: T) -> None:
        """Emit ``value``, first waiting while a downstream ``BLOCK`` queue is full."""
        stream = self._running_stream()
        await stream.wait_for_room()
        stream.on_next(value)
