"""How each node style is put onto its streams: the one runtime form all three compile to.

Whatever the style, activating a node means: read its :class:`InputStream` s, push into its
:class:`PortStream` s, register what must be disposed on restart or close, and tell the runner
when the node has finished (``finish_node``).

- Rx: call ``wire(**inputs)`` once and subscribe to the observables it returns.
- async: feed every input into a bounded :class:`InputQueue` and run ``run(**queues)`` as a
  task owned by the node.
- function: a sync function is called inline on each message (the fast path: no Rx operator
  in between), on a worker thread when the node is ``threaded``, or, for an async function,
  by a task reading a queue.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reactivex import Observable, abc

from flowkit.function_node import FunctionNode
from flowkit.node import NodeStyle
from flowkit.ports import Overflow
from flowkit.runtime.queues import InputQueue
from flowkit.runtime.streams import PortStream

if TYPE_CHECKING:
    from flowkit.runtime.runner import GraphRunner, NodeRun

__all__ = ["activate"]

_DRIVE = ""  # key of an observable subscribed only to drive a sink node


def activate(runner: GraphRunner, run: NodeRun) -> None:
    """Start ``run``'s node in its style."""
    style = type(run.node).style
    if style is NodeStyle.RX:
        _activate_rx(runner, run)
    elif style is NodeStyle.ASYNC:
        _activate_async(runner, run)
    else:
        _activate_function(runner, run)


class _OutputObserver(abc.ObserverBase[Any]):
    """Receives one observable returned by ``wire`` and forwards it to its port stream."""

    # No __slots__: ``on_next`` is replaced per instance, which a slot would not allow.

    def __init__(self, runner: GraphRunner, run: NodeRun, target: PortStream[Any] | None):
        self.runner = runner
        self.run = run
        self.target = target
        if target is not None:
            # The port stream's own method, called by the observable without a frame of
            # ours in between: one Python call less per message out of every Rx node.
            self.on_next = target.on_next  # type: ignore[method-assign]

    def on_next(self, value: Any) -> None:
        # Reached only without a port (an observable that just drives a sink node): with
        # one, __init__ put the port stream's on_next in this method's place.
        return

    def on_error(self, error: Exception) -> None:
        self.runner._node_failed(self.run.name, error)

    def on_completed(self) -> None:
        if self.target is not None:
            self.target.on_completed()
        self.run.open -= 1
        if self.run.open <= 0:
            self.runner.finish_node(self.run)


def _activate_rx(runner: GraphRunner, run: NodeRun) -> None:
    node = run.node
    result = node.wire(**run.inputs)
    outputs = _normalize(node.name, type(node).__qualname__, list(run.outputs), result)
    for port, observable in outputs.items():
        run.open += 1
        observer = _OutputObserver(runner, run, run.outputs.get(port))
        subscription = observable.subscribe(observer, scheduler=runner.scheduler)
        run.cleanup.append(subscription.dispose)


def _normalize(
    name: str, cls: str, ports: list[str], result: Any
) -> Mapping[str, Observable[Any]]:
    if isinstance(result, Observable):
        if len(ports) == 1:
            return {ports[0]: result}
        if not ports:
            return {_DRIVE: result}
        raise TypeError(
            f"{cls}.wire() of node {name!r} returned one observable but the node has "
            f"{len(ports)} outputs ({', '.join(ports)}); return a dict of port name to observable"
        )
    if isinstance(result, Mapping) and result:
        unknown = [k for k in result if k not in ports]
        if unknown:
            raise TypeError(
                f"{cls}.wire() of node {name!r} returned observables for {unknown}, which are "
                f"not outputs of the node (outputs: {', '.join(ports) or 'none'})"
            )
        return result
    raise TypeError(
        f"{cls}.wire() of node {name!r} returned {result!r}; return an observable (or a dict "
        "of port name to observable) built from the inputs, which the runtime subscribes"
    )


def _queue_inputs(run: NodeRun) -> dict[str, InputQueue[Any]]:
    queues: dict[str, InputQueue[Any]] = {}
    for name, stream in run.inputs.items():
        port = run.node.inputs[name]
        queue: InputQueue[Any] = InputQueue(
            port.queue, port.overflow, label=f"node {run.name!r} input {name!r}"
        )
        run.cleanup.append(stream.feed_queue(queue))
        run.cleanup.append(queue.close)
        queues[name] = queue
    run.queues = queues
    return queues


def _activate_async(runner: GraphRunner, run: NodeRun) -> None:
    queues = _queue_inputs(run)
    coro = run.node.run(**queues)
    runner._create_node_task(run.name, coro, "run", main=True)


def _activate_function(runner: GraphRunner, run: NodeRun) -> None:
    node = run.node
    assert isinstance(node, FunctionNode)
    cls = type(node)
    call: Callable[[Any], Any] = (
        functools.partial(cls.fn, **node.kwargs) if node.kwargs else cls.fn
    )
    out = run.outputs.get("out")
    if cls.mode in ("async", "async_generator"):
        queue = _queue_inputs(run)[cls.input_name]
        runner._create_node_task(
            run.name, _async_function_loop(runner, run, call, queue, out), "fn", main=True
        )
        return
    stream = run.inputs[cls.input_name]
    observer: _InlineCall | _ThreadedCall
    if cls.threaded:
        port = node.inputs[cls.input_name]
        observer = _ThreadedCall(runner, run, call, out, port.queue, port.overflow)
    else:
        observer = _InlineCall(runner, run, call, out)
    run.cleanup.append(stream.add_observer(observer))


class _InlineCall:
    """The fast path: call the function on each message, right where it is delivered."""

    __slots__ = ("call", "generator", "out", "run", "runner", "skip_none")

    def __init__(
        self, runner: GraphRunner, run: NodeRun, call: Callable[[Any], Any],
        out: PortStream[Any] | None,
    ) -> None:
        cls = type(run.node)
        assert issubclass(cls, FunctionNode)
        self.runner, self.run, self.call, self.out = runner, run, call, out
        self.generator = cls.mode == "generator"
        self.skip_none = cls.skip_none

    def on_next(self, value: Any) -> None:
        try:
            result = self.call(value)
            if self.generator:
                out = self.out
                for item in result:
                    if out is not None:
                        out.on_next(item)
                return
        except Exception as exc:
            self.runner._node_failed(self.run.name, exc)
            return
        if self.out is not None and not (result is None and self.skip_none):
            self.out.on_next(result)

    def on_error(self, error: Exception) -> None:  # pragma: no cover - errors never travel edges
        self.runner._node_failed(self.run.name, error)

    def on_completed(self) -> None:
        self.runner.finish_node(self.run)


class _ThreadedCall(_InlineCall):
    """Calls the function on the node's worker thread; results return to the loop in order."""

    __slots__ = ("input_done", "loop", "maxsize", "overflow", "pending")

    def __init__(
        self, runner: GraphRunner, run: NodeRun, call: Callable[[Any], Any],
        out: PortStream[Any] | None, maxsize: int, overflow: Overflow,
    ) -> None:
        super().__init__(runner, run, call, out)
        self.loop = asyncio.get_running_loop()
        self.pending = 0
        self.maxsize = maxsize
        self.overflow = overflow
        self.input_done = False

    def on_next(self, value: Any) -> None:
        if self.pending >= self.maxsize and self.overflow is not Overflow.BLOCK:
            # Work handed to a thread cannot be taken back, so a full backlog drops the new one.
            self.run.stats.dropped += 1
            return
        self.pending += 1
        work = self.call if not self.generator else (lambda v: list(self.call(v)))
        # Through the loop, so the result comes back on it, in order (one worker per node),
        # and a loop that keeps its own clock (FastForwardLoop) sees the thread is busy.
        future = self.loop.run_in_executor(self.runner._executor(self.run.name), work, value)
        future.add_done_callback(self._deliver)

    def _deliver(self, future: asyncio.Future[Any]) -> None:
        self.pending -= 1
        if future.cancelled() or self.run.finished:
            return
        error = future.exception()
        if error is not None:
            if isinstance(error, Exception):
                self.runner._node_failed(self.run.name, error)
        elif self.out is not None:
            result = future.result()
            for item in result if self.generator else (result,):
                if not (item is None and self.skip_none):
                    self.out.on_next(item)
        if self.input_done and self.pending == 0:
            self.runner.finish_node(self.run)

    def on_completed(self) -> None:
        self.input_done = True
        if self.pending == 0:
            self.runner.finish_node(self.run)


async def _async_function_loop(
    runner: GraphRunner, run: NodeRun, call: Callable[[Any], Any],
    queue: InputQueue[Any], out: PortStream[Any] | None,
) -> None:
    cls = type(run.node)
    assert issubclass(cls, FunctionNode)
    async for value in queue:
        try:
            if cls.mode == "async_generator":
                async for item in call(value):
                    if out is not None:
                        out.on_next(item)
                continue
            result = await call(value)
        except Exception as exc:
            runner._node_failed(run.name, exc)
            continue
        if out is not None and not (result is None and cls.skip_none):
            out.on_next(result)
