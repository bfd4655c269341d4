"""Command line: ``serve`` (the default: the MCP server over stdio), ``demo``, ``simulate``.

Heavy imports happen inside each command so that ``--help`` and the package import stay cheap.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-midjourney",
        description="An MCP server that drives Midjourney through Discord. With no command: serve over stdio.",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio"], default="stdio")

    demo = sub.add_parser("demo", help="run the simulator and the server, imagine + U1 + get_message, save images")
    demo.add_argument("prompt", nargs="?", default="a lighthouse in a storm, oil painting")
    demo.add_argument("--out", default="demo-output", help="folder for the images (default: ./demo-output)")
    demo.add_argument("--job-seconds", type=float, default=4.0, help="how long the simulated bot takes per job")

    simulate = sub.add_parser("simulate", help="run the Discord + Midjourney simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--job-seconds", type=float, default=30.0, help="how long a simulated job takes")
    return parser


def _serve() -> int:
    from .config import ConfigError, load_settings, raw_secrets, setup_logging

    secrets: list[str] = []
    level = os.environ.get("MJ_LOG_LEVEL", "INFO").upper()
    try:
        settings = load_settings()
        secrets.extend(settings.secrets())
        level = settings.log_level
    except ConfigError:
        secrets.extend(raw_secrets(os.environ))
    setup_logging(level, secrets)

    from .server import build_server

    build_server().run()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        return _serve()
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.prompt, out=args.out, job_seconds=args.job_seconds)
    if args.command == "simulate":
        import anyio

        from .config import setup_logging
        from .simulator import serve as simulate

        setup_logging("INFO")
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(lambda: simulate(args.host, args.port, job_seconds=args.job_seconds))
        return 0
    print(f"unknown command {args.command}", file=sys.stderr)
    return 2
