import pytest
from support import AddOne, Collect, Numbers, TwoOut, double, to_text

import flowkit as fk


def test_chain_returns_the_right_side_and_adds_nodes() -> None:
    g = fk.Graph("g")
    src = g.add(Numbers())
    inc, sink = AddOne(), Collect()
    result = src >> inc >> sink
    assert result is sink
    assert list(g.nodes) == ["numbers", "add_one", "collect"]
    assert [str(e) for e in g.edges] == ["numbers.out -> add_one.inp", "add_one.out -> collect.inp"]


def test_node_class_on_the_right_is_built_with_defaults() -> None:
    g = fk.Graph("g")
    node = g.add(Numbers()) >> AddOne
    assert isinstance(node, AddOne) and node.graph is g


def test_fan_out_with_a_list_and_merge_into_one_input() -> None:
    g = fk.Graph("g")
    a, b = g.add(Numbers(), name="a"), g.add(Numbers(), name="b")
    left, right = AddOne(), AddOne()
    assert (a >> [left, right]) == [left, right]
    sink = g.add(Collect())
    b >> sink
    left >> sink
    assert sorted(str(e) for e in g.edges if e.dst.node is sink) == [
        "add_one.out -> collect.inp",
        "b.out -> collect.inp",
    ]
    assert len([e for e in g.edges if e.src.node is a]) == 2


def test_named_ports_and_string_connections() -> None:
    g = fk.Graph("g")
    split = g.add(TwoOut(), name="split")
    g.add(Numbers(), name="nums") >> split
    evens = g.add(Collect(), name="evens")
    g.add(Collect(), name="odds")
    split.evens >> evens
    g.connect("split.odds", "odds.inp")
    assert g.problems() == []


def test_automatic_names_are_unique_and_given_names_are_checked() -> None:
    g = fk.Graph("g")
    assert [g.add(AddOne()).name for _ in range(3)] == ["add_one", "add_one_2", "add_one_3"]
    g.add(AddOne(), name="x")
    dup = g.add(AddOne(), name="x")
    assert dup.name == "x_2"
    problems = [p for p in g.problems() if p.kind is fk.ProblemKind.DUPLICATE_NAME]
    assert len(problems) == 1 and "two nodes are named 'x'" in problems[0].message
    with pytest.raises(ValueError, match=r"'\.' would be read"):
        g.add(AddOne(), name="a.b")


def test_adding_the_same_node_twice_is_harmless() -> None:
    g = fk.Graph("g")
    node = g.add(AddOne())
    assert g.add(node) is node and len(g.nodes) == 1


def test_a_node_belongs_to_one_graph() -> None:
    g1, g2 = fk.Graph("one"), fk.Graph("two")
    node = g1.add(AddOne())
    g2.add(node)
    assert any("already belongs to graph 'one'" in p.message for p in g2.problems())


def test_linking_nodes_outside_any_graph_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"add the first node with g.add"):
        _ = AddOne() >> AddOne()


def test_linking_in_the_wrong_direction_is_a_problem() -> None:
    g = fk.Graph("g")
    a, b = g.add(AddOne(), name="a"), g.add(AddOne(), name="b")
    g.connect(a.inp, b.inp)  # type: ignore[arg-type]
    assert any(p.kind is fk.ProblemKind.INVALID_LINK and "a.inp is an input" in p.message
               for p in g.problems())


def _asr() -> fk.Graph:
    sub = fk.Graph("asr")
    inc = sub.add(AddOne(), name="inc")
    dbl = sub.add(double(), name="dbl")
    inc >> dbl
    sub.expose("numbers", inc.inp)
    sub.expose("doubled", dbl.out)
    return sub


def test_subgraph_joins_the_parent_with_prefixed_names_and_exposed_ports() -> None:
    g = fk.Graph("parent")
    src = g.add(Numbers())
    asr = g.add(_asr(), name="asr")
    text = src >> asr >> to_text()
    g.add(Collect()).inp.node  # noqa: B018 - just another node
    text >> g.nodes["collect"]
    assert {"asr/inc", "asr/dbl"} <= set(g.nodes)
    assert g.nodes["asr/inc"].group == "asr"
    assert asr.numbers is g.nodes["asr/inc"].inputs["inp"]
    assert g.problems() == []
    with pytest.raises(AttributeError, match="exposes no port 'nope'"):
        _ = asr.nope


def test_a_subgraph_is_used_once() -> None:
    sub = _asr()
    fk.Graph("p1").add(sub)
    with pytest.raises(ValueError, match="already added"):
        fk.Graph("p2").add(sub)
    with pytest.raises(ValueError, match="change the parent graph"):
        sub.add(AddOne())
