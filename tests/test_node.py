from typing import Any

import pytest
from reactivex import Observable
from support import AddOne, Collect, TwoOut

import flowkit as fk


class Tagged(fk.Node):
    audio: fk.In[bytes] = fk.In(format=fk.AudioFormat(16_000), doc="microphone")
    ctl: fk.In[str] = fk.In(required=False)
    out: fk.Out[bytes] = fk.Out(default=True)
    side: fk.Out[str]

    def wire(self, audio: Observable[bytes], ctl: Observable[str]) -> dict[str, Any]:
        return {"out": audio}


class Louder(Tagged):
    """Inherits ports and adds one."""

    level: fk.Out[float]


def test_ports_by_annotation_and_with_options() -> None:
    node = Tagged()
    assert list(node.inputs) == ["audio", "ctl"]
    assert list(node.outputs) == ["out", "side"]
    assert node.audio.format == fk.AudioFormat(16_000)
    assert node.audio.doc == "microphone"
    assert node.ctl.required is False
    assert node.side.type is str
    assert Tagged.style is fk.NodeStyle.RX


def test_each_instance_gets_its_own_bound_ports() -> None:
    a, b = AddOne(), AddOne()
    assert a.inp is not b.inp
    assert a.inp.node is a and b.inp.node is b


def test_ports_are_inherited() -> None:
    node = Louder()
    assert list(node.outputs) == ["out", "side", "level"]


def test_default_ports() -> None:
    node = Tagged()
    assert node.default_output() is node.out            # marked default=True
    assert node.default_input() is node.audio           # the only required input

    class TwoRequired(fk.Node):
        a: fk.In[int]
        b: fk.In[int]

        def wire(self, a: Any, b: Any) -> Any:
            return a

    assert "2 inputs (a, b)" in str(TwoRequired().default_input())
    assert "none is marked default=True" in str(TwoOut().default_output())


def test_port_without_a_type_is_refused() -> None:
    with pytest.raises(fk.NodeDefinitionError, match=r"Bad.out has no message type.*Out\[Any\]"):

        class Bad(fk.Node):
            out: fk.Out  # type: ignore[type-arg]

            def wire(self) -> Any:
                return None


def test_a_node_needs_exactly_one_behaviour() -> None:
    with pytest.raises(fk.NodeDefinitionError, match="has no behaviour"):

        class Nothing(fk.Node):
            out: fk.Out[int]

    with pytest.raises(fk.NodeDefinitionError, match="both wire"):

        class Both(fk.Node):
            def wire(self) -> Any:
                return None

            async def run(self) -> None:
                return None

    with pytest.raises(fk.NodeDefinitionError, match="must be 'async def'"):

        class SyncRun(fk.Node):
            def run(self) -> None:
                return None

    class Base(fk.Node, abstract=True):
        out: fk.Out[int]

    assert list(Base._output_templates) == ["out"]


def test_reserved_and_mistyped_port_declarations() -> None:
    with pytest.raises(fk.NodeDefinitionError, match="'name' is taken"):

        class Named(fk.Node):
            name: fk.Out[int]  # type: ignore[assignment]

            def wire(self) -> Any:
                return None

    with pytest.raises(fk.NodeDefinitionError, match="its default is"):

        class Crossed(fk.Node):
            inp: fk.In[int] = fk.Out()  # type: ignore[assignment]

            def wire(self, inp: Any) -> Any:
                return inp


class Gain(fk.Node):
    inp: fk.In[int]
    out: fk.Out[int]

    class Params(fk.NodeParams):
        db: float = 0.0
        label: str

    def wire(self, inp: Observable[int]) -> Observable[int]:
        return inp


def test_params_are_validated_with_a_clear_message() -> None:
    node = Gain(label="x", db=3)
    assert node.params.model_dump() == {"db": 3.0, "label": "x"}
    with pytest.raises(fk.NodeParamsError) as info:
        Gain(db="loud")
    message = str(info.value)
    assert "Gain: invalid parameters" in message
    assert "db:" in message and "label:" in message
    assert "accepted parameters: db, label" in message
    with pytest.raises(fk.NodeParamsError, match="volume: Extra inputs"):
        Gain(label="x", volume=2)


def test_unknown_port_attribute_suggests_the_close_one() -> None:
    node = Collect()
    with pytest.raises(AttributeError, match="did you mean 'inp'"):
        _ = node.inpt


def test_library_is_the_top_level_package() -> None:
    assert AddOne.library() == "support"
    assert fk.FunctionNode.library() == "flowkit"
