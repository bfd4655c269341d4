"""A fake Discord (REST, gateway, CDN) with a fake Midjourney bot, speaking the real wire formats.

It is an independent witness of the protocol (protocol.md): it shares no code with the client but
`models.MIDJOURNEY_BOT_ID`, so a client that works against it is expected to work against Discord.

- `SimulatorServer`: runs it on 127.0.0.1 in a background thread (tests), with thread-safe controls.
- `serve()`: runs it as a task until cancelled (`mcp-midjourney simulate`).
- `Simulator`: the ASGI app and its state, for embedding in an existing event loop.
"""

from .app import Simulator
from .server import SimulatorServer, serve
from .state import SimulatorConfig

__all__ = ["Simulator", "SimulatorConfig", "SimulatorServer", "serve"]
