from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import flowkit as fk


@fk.node
def scale(x: float, *, factor: float = 2.0, label: str = "") -> float:
    """Multiply by a factor."""
    return x * factor


@fk.node
def evens(x: int) -> int | None:
    return x if x % 2 == 0 else None


@fk.node
def split(text: str) -> Iterator[str]:
    yield from text.split()


@fk.node
async def later(text: str) -> AsyncIterator[str]:
    yield text


@fk.node
def sink(x: Any) -> None:
    return None


def test_ports_and_params_come_from_the_signature() -> None:
    node = scale(factor=3)
    assert type(node).__name__ == "Scale"
    assert list(node.inputs) == ["x"] and node.x.type is float
    assert list(node.outputs) == ["out"] and node.out.type is float
    assert node.kwargs == {"factor": 3.0, "label": ""}
    assert type(node).style is fk.NodeStyle.FUNCTION
    assert type(node).__doc__ == "Multiply by a factor."


def test_modes() -> None:
    assert type(evens()).skip_none and evens().out.type is int
    assert type(split()).mode == "generator" and split().out.type is str
    assert type(later()).mode == "async_generator"
    assert sink().outputs == {}


def test_params_are_validated() -> None:
    with pytest.raises(fk.NodeParamsError, match="factor"):
        scale(factor="big")


def test_signature_mistakes_are_explained() -> None:
    with pytest.raises(fk.NodeDefinitionError, match="exactly one positional"):

        @fk.node
        def two(a: int, b: int) -> int:
            return a + b

    with pytest.raises(fk.NodeDefinitionError, match="annotate the input"):

        @fk.node
        def untyped(a) -> int:  # type: ignore[no-untyped-def]
            return 1

    with pytest.raises(fk.NodeDefinitionError, match="annotate the return"):

        @fk.node
        def noreturn(a: int):  # type: ignore[no-untyped-def]
            return a

    with pytest.raises(fk.NodeDefinitionError, match=r"Iterator\[T\]"):

        @fk.node
        def gen(a: int) -> int:
            yield a

    with pytest.raises(fk.NodeDefinitionError, match=r"\*args"):

        @fk.node
        def star(a: int, **kw: int) -> int:
            return a


def test_decorator_options() -> None:
    @fk.node(name="Heavy", threaded=True, error_policy=fk.ErrorPolicy.RESTART)
    def heavy(x: int) -> int:
        return x

    assert heavy.__name__ == "Heavy"
    assert heavy.threaded is True
    assert heavy().error_policy is fk.ErrorPolicy.RESTART


def test_annotated_constraints_reach_the_params_model() -> None:
    from typing import Annotated

    import pydantic

    @fk.node
    def repeat(text: str, *, times: Annotated[int, pydantic.Field(ge=1)] = 1) -> str:
        return text * times

    assert repeat(times=2).kwargs == {"times": 2}
    with pytest.raises(fk.NodeParamsError, match="times"):
        repeat(times=0)
