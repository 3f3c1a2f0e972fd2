from typing import Any

import pytest
from reactivex import Observable
from support import AddOne, Collect, Numbers, TwoOut, Words

import flowkit as fk


class Audio:
    """A stand-in audio message for format tests."""


class Mic(fk.Node):
    out: fk.Out[Audio] = fk.Out(format=fk.AudioFormat(48_000))

    def wire(self) -> Any:
        return None


class Ear(fk.Node):
    inp: fk.In[Audio] = fk.In(format=fk.AudioFormat(16_000))

    def wire(self, inp: Observable[Audio]) -> Observable[Audio]:
        return inp


class Convert(fk.Node):
    inp: fk.In[Audio]
    out: fk.Out[Audio]

    class Params(fk.NodeParams):
        rate: int

    def wire(self, inp: Observable[Audio]) -> Observable[Audio]:
        return inp


def _convert(src: fk.AudioFormat, dst: fk.AudioFormat) -> fk.Node | None:
    node = Convert(rate=dst.sample_rate)
    node.outputs["out"].format = dst
    return node


@pytest.fixture
def converter() -> Any:
    fk.register_converter(Audio, _convert)
    yield _convert
    fk.unregister_converter(Audio, _convert)


def test_every_problem_is_reported_at_once() -> None:
    g = fk.Graph("broken")
    words = g.add(Words(), name="words")
    inc = g.add(AddOne(), name="inc")
    words >> inc                                   # type mismatch: str -> int
    g.add(Collect(), name="lonely")                # unconnected required input
    a, b = g.add(AddOne(), name="a"), g.add(AddOne(), name="b")
    a >> b >> a                                    # undeclared cycle
    g.add(AddOne(), name="inc")                    # duplicate name
    split = g.add(TwoOut(), name="split")
    g.add(Numbers(), name="nums") >> split
    split >> g.add(Collect(), name="sink")         # ambiguous >>
    g.connect("nums.bogus", "sink.inp")            # unknown port
    g.add(Mic(), name="mic") >> g.add(Ear(), name="ear")  # format mismatch, no converter

    with pytest.raises(fk.GraphError) as info:
        g.validate()
    kinds = {p.kind for p in info.value.problems}
    assert kinds == set(fk.ProblemKind) - {fk.ProblemKind.INVALID_LINK}
    text = str(info.value)
    assert "graph 'broken' has" in text
    assert "words.out sends str but inc.inp expects int" in text
    assert "required input lonely.inp (Any) has no edge" in text
    assert "a -> b -> a" in text and "feedback=True" in text
    assert "two nodes are named 'inc'" in text
    assert "TwoOut node 'split' has 2 outputs (evens, odds)" in text
    assert "no output port 'bogus'" in text
    assert "mic.out sends 48 kHz mono but ear.inp expects 16 kHz mono" in text


class Picky(fk.Node):
    """Takes numbers from a node named ``trusted`` only: a check its port types cannot say."""

    inp: fk.In[int]
    out: fk.Out[int]
    seen: list[list[str]] = []

    def wire(self, inp: Observable[int]) -> Observable[int]:
        return inp

    def link_problems(self, edges: Any) -> list[fk.Problem]:
        Picky.seen.append([str(e) for e in edges])
        return [
            fk.Problem(
                fk.ProblemKind.INVALID_LINK,
                f"{e.src.qualname} -> {e.dst.qualname}: only 'trusted' may feed picky",
                (e.src.node.name, self.name),
            )
            for e in edges
            if e.dst.node is self and e.src.node is not None and e.src.node.name != "trusted"
        ]


def test_a_node_reports_problems_with_its_own_links() -> None:
    Picky.seen.clear()
    g = fk.Graph("picky")
    picky = g.add(Picky(), name="picky")
    g.add(Numbers(), name="nums") >> picky >> g.add(Collect(), name="sink")
    g.add(Words(), name="words") >> g.add(Collect(), name="other")  # not picky's edge

    [problem] = g.problems()
    assert problem.kind is fk.ProblemKind.INVALID_LINK and problem.nodes == ("nums", "picky")
    assert problem.message == "nums.out -> picky.inp: only 'trusted' may feed picky"
    assert Picky.seen[-1] == ["nums.out -> picky.inp", "picky.out -> sink.inp"]
    with pytest.raises(fk.GraphError, match="only 'trusted' may feed picky"):
        g.validate()

    ok = fk.Graph("trusted")
    ok.add(Numbers(), name="trusted") >> ok.add(Picky(), name="picky") >> ok.add(Collect())
    assert ok.problems() == []


def test_unconnected_optional_input_is_fine_and_subclass_fits() -> None:
    class Opt(fk.Node):
        inp: fk.In[fk.Message]
        extra: fk.In[int] = fk.In(required=False)

        def wire(self, inp: Any, extra: Any) -> Any:
            return inp

    class Transcripts(fk.Node):
        out: fk.Out[fk.Transcript]

        def wire(self) -> Any:
            return None

    g = fk.Graph("ok")
    g.add(Transcripts()) >> g.add(Opt())
    assert g.problems() == []


def test_declared_feedback_loops_pass_either_way() -> None:
    class Loop(fk.Node):
        inp: fk.In[int] = fk.In(default=True)
        back: fk.In[int] = fk.In(feedback=True)
        out: fk.Out[int]

        def wire(self, inp: Any, back: Any) -> Any:
            return inp

    g = fk.Graph("loops")
    head = g.add(Numbers()) >> g.add(Loop(), name="head")
    head >> g.add(AddOne(), name="step") >> head.back        # In(feedback=True)
    a, b = g.add(AddOne(), name="a"), g.add(AddOne(), name="b")
    head >> a >> b
    g.connect(b, a, feedback=True)                           # declared on the edge
    assert g.problems() == []
    order = [n.name for n in g.resolve().nodes]
    assert order.index("numbers") < order.index("head") < order.index("a") < order.index("b")


def test_format_mismatch_gets_a_converter_that_shows_in_the_spec(converter: Any) -> None:
    g = fk.Graph("audio")
    g.add(Mic(), name="mic") >> g.add(Ear(), name="ear")
    assert g.problems() == []
    spec = g.spec()
    inserted = [n for n in spec.nodes if n.inserted]
    assert len(inserted) == 1
    assert inserted[0].name == "convert@ear.inp" and inserted[0].params == {"rate": 16000}
    assert [(e.source, e.target) for e in spec.edges] == [
        ("mic", "convert@ear.inp"),
        ("convert@ear.inp", "ear"),
    ]
    assert len(g.nodes) == 2  # resolving never changes the graph itself


def test_conversion_can_be_turned_off(converter: Any) -> None:
    g = fk.Graph("strict", convert_formats=False)
    g.add(Mic()) >> g.add(Ear())
    [problem] = g.problems()
    assert problem.kind is fk.ProblemKind.FORMAT_MISMATCH
    assert "convert_formats=True" in problem.message


def test_converter_factories_must_return_one_in_one_out() -> None:
    def bad(src: fk.AudioFormat, dst: fk.AudioFormat) -> fk.Node:
        return TwoOut()

    fk.register_converter(Audio, bad)
    try:
        g = fk.Graph("bad")
        g.add(Mic()) >> g.add(Ear())
        with pytest.raises(TypeError, match="exactly one of each"):
            g.problems()
    finally:
        fk.unregister_converter(Audio, bad)


def test_a_converter_that_produces_the_wrong_format_is_refused() -> None:
    def wrong(src: fk.AudioFormat, dst: fk.AudioFormat) -> fk.Node:
        node = Convert(rate=8_000)
        node.outputs["out"].format = fk.AudioFormat(8_000)
        return node

    fk.register_converter(Audio, wrong)
    try:
        g = fk.Graph("wrong")
        g.add(Mic()) >> g.add(Ear())
        with pytest.raises(TypeError, match="produces 8 kHz mono, not the 16 kHz mono"):
            g.problems()
    finally:
        fk.unregister_converter(Audio, wrong)
