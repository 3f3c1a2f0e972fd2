"""Tools from Model Context Protocol (MCP) servers, beside flowkit's function tools.

::

    from flowkit.tools.mcp import MCPServerHTTP, MCPServerStdio

    def build(job):
        files = MCPServerStdio("npx", ["-y", "@modelcontextprotocol/server-filesystem", "/srv"])
        crm = MCPServerHTTP("https://crm.example.com/mcp", headers={"Authorization": token})
        brain = g.add(llm.LLM(provider, tools=[get_time], mcp_servers=[files, crm]))
        router = g.add(tools.ToolRouter([get_time], mcp_servers=[files, crm]))

- :class:`MCPServerStdio`, :class:`MCPServerHTTP` (streamable HTTP) and
  :class:`MCPServerSSE`: one connection per job, opened when the nodes start (or, when
  the server cannot be reached then, by a timer 1, 2, 4, ... 30 s apart until it is),
  opened again by the next call when the server went away, and closed when the graph
  ends; the tools are listed again when the server says they changed;
- :class:`MCPTool`: a listed tool, run by the tool machinery like a function tool;
- :class:`MCPServerError`: a server whose tools could not be had yet (the job goes on
  without them until it connects).

The ``mcp`` SDK (the ``flowkit-agents[mcp]`` extra) is imported only when a server connects.
"""

from flowkit.tools.mcp.convert import MCPTool
from flowkit.tools.mcp.server import MCPServer, MCPServerError
from flowkit.tools.mcp.transports import MCPServerHTTP, MCPServerSSE, MCPServerStdio

__all__ = [
    "MCPServer",
    "MCPServerError",
    "MCPServerHTTP",
    "MCPServerSSE",
    "MCPServerStdio",
    "MCPTool",
]
