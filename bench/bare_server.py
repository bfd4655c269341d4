"""The baseline for the cold-start figure: a bare `MCPServer` with one tool, served over stdio.

Run as a script (`python bench/bare_server.py`); it imports nothing of mcp-midjourney, so the ratio of our
server's spawn-to-initialize time to this one's is what our own code adds to the SDK's.
"""

from __future__ import annotations

from mcp.server import MCPServer

server: MCPServer = MCPServer("bare")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run()
