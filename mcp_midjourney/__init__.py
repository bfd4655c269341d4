"""mcp-midjourney: an MCP server that lets an AI agent drive Midjourney through Discord.

Importing the package does no I/O and loads nothing heavy: the server, the engine and the simulator are
imported by the command that needs them.
"""

__version__ = "0.1.0"
