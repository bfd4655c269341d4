"""``python -m mcp_midjourney``: the same as the ``mcp-midjourney`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
