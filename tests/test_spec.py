import pydantic
import pytest
from support import AddOne, Collect, Numbers, double

import flowkit as fk


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque provider>"


class WithProvider(fk.Node):
    inp: fk.In[int]

    class Params(fk.NodeParams):
        provider: Opaque
        retries: int = 2

    async def run(self, inp: object) -> None:
        return None


def _graph() -> fk.Graph:
    g = fk.Graph("spec", description="numbers, one better")
    g.add(Numbers(values=[1, 2])) >> AddOne() >> double() >> Collect()
    g.add(Numbers(), name="more") >> g.add(WithProvider(provider=Opaque()), name="p")
    return g


def test_spec_round_trips_through_json() -> None:
    spec = _graph().spec()
    again = fk.GraphSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


def test_spec_describes_nodes_ports_params_and_edges() -> None:
    spec = _graph().spec()
    assert spec.description == "numbers, one better"
    numbers = spec.node("numbers")
    assert numbers.params == {"values": [1, 2]} and numbers.style == "rx"
    assert numbers.kind == "support.Numbers" and numbers.library == "support"
    assert spec.node("double").style == "function" and spec.node("collect").style == "async"
    assert spec.node("p").params == {"provider": "<Opaque provider>", "retries": 2}
    add_one = spec.node("add_one")
    assert [(p.name, p.type, p.required) for p in add_one.inputs] == [("inp", "int", True)]
    assert {(e.source, e.target, e.type) for e in spec.edges} >= {("add_one", "double", "int")}
    with pytest.raises(KeyError):
        spec.node("missing")


def test_spec_is_frozen() -> None:
    spec = _graph().spec()
    with pytest.raises(pydantic.ValidationError):
        spec.name = "changed"  # type: ignore[misc]


def test_functions_in_params_are_named_not_repred() -> None:
    from flowkit.nodes.tts import TTS
    from flowkit.testing.fakes import FakeTTS

    def shout(text: str) -> str:
        return text.upper()

    g = fk.Graph("named")
    g.add(TTS(FakeTTS(), text_transforms=[shout, str.strip]), name="tts")
    params = g.spec().node("tts").params
    assert params["text_transforms"] == [
        f"{__name__}.test_functions_in_params_are_named_not_repred.<locals>.shout",
        "builtins.str.strip",
    ]
