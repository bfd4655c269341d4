"""The MCP face: app (the server's lifetime and wiring), tools (the tools and their texts), render (how a job
looks to a model), inputs (what an agent may hand us: files, URLs), http (the streamable HTTP transport)."""
