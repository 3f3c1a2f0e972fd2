"""A real MCP server for the MCP tests, built with the SDK's own ``MCPServer`` (FastMCP).

Run it as ``python mcp_server_app.py stdio`` (a subprocess speaking on stdin/stdout),
``python mcp_server_app.py http PORT`` (streamable HTTP on 127.0.0.1:PORT, path ``/mcp``)
or ``python mcp_server_app.py sse PORT`` (path ``/sse``); over HTTP it prints ``ready`` on
stderr once it listens. ``python mcp_server_app.py raw`` is not the SDK: a hand-written
JSON-RPC peer that lists one tool and answers its call with a result that is not one.

Its tools cover what a client must survive: a result (``add``), a failure (``fail``), a
slow call (``slow``), content that is not text (``snapshot``), a server that dies in the
middle of a call (``crash``), a line that is not JSON-RPC (``garble``, stdio only), its
process id (``pid``), the request's HTTP headers (``whoami``) and a tool list that changes
(``grow`` adds a tool and sends ``notifications/tools/list_changed``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image

# A 1x1 PNG: what a camera tool would send back, made small.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

server = MCPServer("flowkit-test-tools", log_level="WARNING")


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ToolError(f"cannot do that: {reason}")


@server.tool()
async def slow(seconds: float) -> str:
    """Wait, then say how long it waited."""
    await asyncio.sleep(seconds)
    return f"waited {seconds:g} s"


@server.tool()
def snapshot() -> Image:
    """Take a picture."""
    return Image(data=PIXEL, format="png")


@server.tool()
def crash() -> str:
    """End the server process in the middle of the call."""
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def garble() -> str:
    """Write a line that is not JSON-RPC on stdout, then answer (stdio only)."""
    sys.stdout.write("this is not json\n")
    sys.stdout.flush()
    return "garbled"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def whoami(ctx: Context) -> str:
    """The HTTP headers the request came with (streamable HTTP only)."""
    headers = ctx.headers or {}
    return f"token={headers.get('x-token', '')}"


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool of that name (it echoes its text), and tell the client the list changed."""

    def echo(text: str) -> str:
        return f"{name}: {text}"

    server.add_tool(echo, name=name, description=f"Echo the text, as {name}.")
    # A 2026 client hears of it on its subscriptions/listen stream, an older one on the
    # connection itself; each way is a no-op for the other era.
    await ctx.notify_tools_changed()
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


def raw() -> None:
    """Speak just enough JSON-RPC to be listed, then answer the call with garbage."""
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification
        method = message["method"]
        reply: dict[str, object] = {"jsonrpc": "2.0", "id": message["id"]}
        if method == "initialize":
            reply["result"] = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "raw", "version": "0"},
            }
        elif method == "tools/list":
            reply["result"] = {"tools": [{
                "name": "broken", "description": "Answers with garbage.",
                "inputSchema": {"type": "object", "properties": {}},
            }]}
        elif method == "tools/call":
            reply["result"] = {"content": 42}  # content must be a list of blocks
        else:
            reply["error"] = {"code": -32601, "message": f"method not found: {method}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> None:
    """Serve over the transport named on the command line."""
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        server.run("stdio")
        return
    if transport == "raw":
        raw()
        return
    port = int(sys.argv[2])
    import uvicorn

    if transport == "sse":
        app = server.sse_app(host="127.0.0.1")
    else:
        app = server.streamable_http_app(host="127.0.0.1")

    class Ready(uvicorn.Server):
        async def startup(self, sockets: object = None) -> None:
            await super().startup(sockets)  # type: ignore[arg-type]
            print("ready", file=sys.stderr, flush=True)

    Ready(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run()


if __name__ == "__main__":
    main()
