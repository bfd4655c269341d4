"""Command line: ``serve`` (the default: the MCP server over stdio, or ``--transport http``), ``doctor``,
``demo``, ``simulate``.

Heavy imports happen inside each command so that ``--help`` and the package import stay cheap.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="mcp-midjourney",
        description="An MCP server that drives Midjourney through Discord. With no command: serve over stdio.",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP only: the address to bind (default 127.0.0.1; any other needs MJ_HTTP_TOKEN)",
    )
    serve.add_argument("--port", type=int, default=8000, help="HTTP only: the port (default 8000)")

    sub.add_parser(
        "doctor",
        help="check the configuration, the token, the channel, the gateway and the command index; say what to fix",
    )

    demo = sub.add_parser(
        "demo", help="run the simulator and the server: imagine, U1, animate, pick a video; save the files"
    )
    demo.add_argument("prompt", nargs="?", default="a lighthouse in a storm, oil painting")
    demo.add_argument("--out", default="demo-output", help="folder for the images (default: ./demo-output)")
    demo.add_argument("--job-seconds", type=float, default=4.0, help="how long the simulated bot takes per job")

    simulate = sub.add_parser("simulate", help="run the Discord + Midjourney simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--job-seconds", type=float, default=30.0, help="how long a simulated job takes")
    return parser


def _serve(transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> int:
    from .config import ConfigError, load_settings, read_startup, setup_logging

    startup = read_startup()  # what serving needs even when the configuration is broken
    http_token = startup.http_token
    secrets: list[str] = [http_token] if http_token else []
    settings = None
    try:
        settings = load_settings()
        secrets.extend(settings.secrets())
    except ConfigError:
        secrets.extend(startup.tokens)
    setup_logging(startup.log_level, secrets)

    if transport == "http":
        from .server.http import RefusedToStart, run_http

        try:
            run_http(host, port, http_token, startup.http_allowed_hosts, settings)
        except RefusedToStart as exc:
            print(f"mcp-midjourney: {exc}", file=sys.stderr)
            return 2
        return 0

    # The HTTP stack's transports and the CA bundle load later, in a worker thread, while `initialize` is answered.
    from .server.app import build_server

    build_server().run()
    return 0


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == []:
        return _serve()  # how hosts start it: no command line to parse (argparse alone costs ~10 ms)
    args = _parser().parse_args(argv)
    if args.command is None:
        return _serve()
    if args.command == "serve":
        return _serve(args.transport, args.host, args.port)
    if args.command == "doctor":
        from .commands.doctor import run_doctor

        return run_doctor()
    if args.command == "demo":
        from .commands.demo import run_demo

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
