import pytest
from support import AddOne, Collect, collected

import flowkit as fk


def test_audio_format_reads_naturally_and_rejects_nonsense() -> None:
    assert str(fk.AudioFormat(16_000)) == "16 kHz mono"
    assert str(fk.AudioFormat(48_000, 2)) == "48 kHz stereo"
    assert str(fk.AudioFormat(22_050, 6)) == "22.05 kHz 6 ch"
    with pytest.raises(ValueError, match="must be positive"):
        fk.AudioFormat(0)


def test_input_queue_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fk.In(queue=0)


def test_bound_ports_know_their_node_and_name() -> None:
    g = fk.Graph("g")
    node = g.add(AddOne(), name="inc")
    assert node.inp.qualname == "inc.inp"
    assert node.out.node is node
    assert node.out.type is int
    assert "Out[int] inc.out" in repr(node.out)


def test_send_outside_a_running_graph_says_so() -> None:
    node = AddOne()
    with pytest.raises(RuntimeError, match="not running"):
        node.out.send(1)


def test_sender_outside_a_running_graph_says_so() -> None:
    node = AddOne()
    with pytest.raises(RuntimeError, match="not running"):
        node.out.sender()


class BoundSender(fk.Node):
    """Sends through the port's bound sender, as a transport's per-frame callback would."""

    out: fk.Out[int]

    async def run(self) -> None:
        emit = self.out.sender()
        for value in (1, 2, 3):
            emit(value)


async def test_a_bound_sender_delivers_and_counts_like_send() -> None:
    g = fk.Graph("g")
    sink = Collect()
    g.add(BoundSender()) >> sink
    runner = fk.GraphRunner(g)
    await runner.run()
    assert collected(sink) == [1, 2, 3]
    assert runner.metrics().node("bound_sender").messages_out == 3
