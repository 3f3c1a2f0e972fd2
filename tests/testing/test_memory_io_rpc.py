"""MemoryIO's RPC methods: participants call what a node registered, by name."""

from __future__ import annotations

import pytest
from livekit import rtc

from flowkit.room_io import RpcMethods
from flowkit.testing.memory_io import DEFAULT_PARTICIPANT, MemoryIO


async def test_a_call_reaches_the_handler_with_the_caller_and_payload() -> None:
    io = MemoryIO()
    assert isinstance(io, RpcMethods)
    calls: list[rtc.RpcInvocationData] = []

    async def echo(call: rtc.RpcInvocationData) -> str:
        calls.append(call)
        return call.payload.upper()

    io.register_rpc("shout", echo)
    io.register_rpc("quiet", lambda call: calls.append(call) or "")
    assert await io.call_rpc("shout", "hi", participant="bob") == "HI"
    assert await io.call_rpc("quiet") == ""  # a handler may answer at once, too
    assert [(c.method, c.caller_identity) for c in calls] == [
        ("shout", "bob"), ("quiet", DEFAULT_PARTICIPANT)]
    io.unregister_rpc("quiet")
    assert io.rpc_methods == ["shout"]


async def test_an_unknown_method_is_refused_as_livekit_refuses_it() -> None:
    io = MemoryIO()
    io.register_rpc("start_turn", lambda call: "")
    with pytest.raises(rtc.RpcError) as refused:
        await io.call_rpc("start_tunr")
    assert refused.value.code == rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD
    assert "no RPC method 'start_tunr'; registered: ['start_turn']" in refused.value.message
