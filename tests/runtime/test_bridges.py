import asyncio
from collections.abc import AsyncIterator

import pytest
import reactivex
from reactivex.subject import Subject

import flowkit as fk


async def test_to_async_iterator_reads_values_and_unsubscribes_on_break() -> None:
    subject: Subject[int] = Subject()
    received = []
    iterator = fk.to_async_iterator(subject)
    for i in range(3):
        subject.on_next(i)
    assert len(subject.observers) == 1
    async for value in iterator:
        received.append(value)
        if value == 2:
            break
    await iterator.aclose()
    assert received == [0, 1, 2]
    assert subject.observers == []


async def test_to_async_iterator_ends_on_completion_and_raises_errors() -> None:
    assert [v async for v in fk.to_async_iterator(reactivex.of(1, 2))] == [1, 2]
    with pytest.raises(ZeroDivisionError):
        async for _ in fk.to_async_iterator(reactivex.throw(ZeroDivisionError())):
            pass


async def test_to_async_iterator_cancellation_unsubscribes() -> None:
    subject: Subject[int] = Subject()

    async def reader() -> None:
        async for _ in fk.to_async_iterator(subject):
            pass

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    assert len(subject.observers) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert subject.observers == []


async def test_from_async_iterable_streams_and_dispose_cancels_the_work() -> None:
    state = {"closed": False}
    gate = asyncio.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            await gate.wait()  # an in-flight request
            yield 2
        finally:
            state["closed"] = True

    seen: list[int] = []
    subscription = fk.from_async_iterable(numbers).subscribe(seen.append)
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen == [1]
    subscription.dispose()
    for _ in range(3):
        await asyncio.sleep(0)
    assert state["closed"] is True
    gate.set()
    await asyncio.sleep(0)
    assert seen == [1]


async def test_from_async_iterable_sends_errors_and_completion() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("provider went away")

    errors: list[Exception] = []
    done = asyncio.Event()
    fk.from_async_iterable(failing).subscribe(
        on_error=lambda e: (errors.append(e), done.set()), on_completed=done.set
    )
    await asyncio.wait_for(done.wait(), 1)
    assert isinstance(errors[0], ConnectionError)
