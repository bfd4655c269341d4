"""`python -m compat`: every agent framework's own MCP client against our server and the simulator.

    python -m compat                      every framework, writes docs/compatibility.md
    python -m compat --only openai-agents,google-adk   (prints; writes only with --out)
    python -m compat --job-seconds 45     how long one simulated job takes (default 45 s, as a real one)

Each framework is installed from the package index into its own venv under `.compat/<name>/` (reused while its
requirements are unchanged; `--reinstall` makes it anew), so this command needs the network to the index. Each
row runs its driver (`compat/drivers/`) in that venv against a fresh simulator: imagine → U1 → get_message, the
tools called as the framework's agent runtime calls them, at the framework's defaults. A framework that fails
to install or to connect is a row saying why.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import render
from .runner import ROOT, VENVS, Framework, Row, ensure_venv, run_row

FRAMEWORKS = [
    # The reference: the client this project's tests use (the SDK 2.x, which sends a courtesy cancel on timeout).
    Framework("mcp2", "mcp SDK 2.x client (reference)", (), "mcp2_driver", ("stdio", "http"), own=True),
    Framework("mcp1", "mcp SDK 1.x client", ("mcp>=1.20,<2",), "mcp1_driver", ("stdio", "http")),
    Framework("langchain", "langchain-mcp-adapters", ("langchain-mcp-adapters",), "langchain_driver"),
    Framework(
        "openai-agents",
        "openai-agents",
        ("openai-agents",),
        "openai_agents_driver",
        ("stdio", "http"),
        tuned=(("client_session_timeout_seconds", 60),),
    ),
    Framework("pydantic-ai", "pydantic-ai", ("pydantic-ai-slim[mcp,anthropic,google,openai]",), "pydantic_ai_driver"),
    # smolagents[mcp] brings mcp 2.x, which its mcpadapt (0.1.x) cannot import; mcpadapt also needs websockets.
    Framework("smolagents", "smolagents", ("smolagents[mcp]", "mcp<2", "websockets"), "smolagents_driver"),
    Framework(
        "llama-index",
        "llama-index-tools-mcp",
        ("llama-index-tools-mcp",),
        "llama_index_driver",
        tuned=(("timeout", 60),),
        server_tuned=(("MJ_PREVIEW", "off"),),
    ),
    Framework(
        "google-genai",
        "google-genai",
        ("google-genai", "mcp"),
        "google_genai_driver",
        server_tuned=(("MJ_PREVIEW", "off"),),
    ),
    Framework(
        "google-adk",
        "google-adk",
        ("google-adk[mcp]",),
        "google_adk_driver",
        ("stdio", "http"),
        tuned=(("timeout", 60),),
        server_tuned=(("MJ_PREVIEW", "off"),),
    ),
    # The last fast-agent for Python 3.11 (0.2.36) pins mcp 1.10.1 and leaves the rest open: today's releases of
    # pydantic (2.12+), a2a-sdk (0.3+) and google-genai break its imports, so they are held at its era's.
    Framework(
        "fast-agent",
        "fast-agent",
        ("fast-agent-mcp", "pydantic>=2.11,<2.12", "a2a-sdk>=0.2.9,<0.3", "google-genai<1.25"),
        "fast_agent_driver",
    ),
    Framework("anthropic", "anthropic SDK MCP helpers", ("anthropic[mcp]", "mcp"), "anthropic_driver"),
]


def _one(framework: Framework, job_seconds: float, workdir: Path, reinstall: bool) -> list[Row]:
    started = time.monotonic()
    print(f"[compat] {framework.name}: installing ...", file=sys.stderr, flush=True)
    error = ensure_venv(framework, reinstall=reinstall)
    if error is not None:
        print(f"[compat] {framework.name}: install failed: {error}", file=sys.stderr, flush=True)
        return [Row(framework, t, install_error=error) for t in framework.transports]
    rows = []
    variants = [(t, False) for t in framework.transports]
    if framework.tuned or framework.server_tuned:
        variants.append(("stdio", True))
    for transport, tuned in variants:
        print(f"[compat] {framework.name} over {transport} ...", file=sys.stderr, flush=True)
        rows.append(run_row(framework, transport, job_seconds, workdir, timeout=900, tuned=tuned))
        report = rows[-1].report
        print(
            f"[compat] {framework.name} over {transport}: flow {'ok' if report.get('flow_ok') else 'FAILED'}, "
            f"jobs {rows[-1].jobs}, {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    names = [f.name for f in FRAMEWORKS]
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--out", type=Path, help="write the report here (default docs/compatibility.md, full runs)")
    parser.add_argument("--job-seconds", type=float, default=45.0, help="one simulated job's length (default 45)")
    parser.add_argument("--parallel", type=int, default=3, help="frameworks run at once (default 3)")
    parser.add_argument("--reinstall", action="store_true", help="make every venv anew")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",")] if args.only else names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        parser.error(f"unknown framework(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    frameworks = [f for f in FRAMEWORKS if f.name in chosen]
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # Each row's config, driver log, server log and report stay here until the next run.
    workdir = VENVS / "last-run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = [pool.submit(_one, f, args.job_seconds, workdir, args.reinstall) for f in frameworks]
        rows = [row for future in futures for row in future.result()]
        command = "python -m compat" + (f" --only {args.only}" if args.only else "")
        if args.job_seconds != 45.0:
            command += f" --job-seconds {args.job_seconds:g}"
    text = render(
        rows,
        command=command,
        date=date,
        seconds=time.monotonic() - started,
        job_seconds=args.job_seconds,
        python=platform.python_version(),
    )
    print(text)
    out = args.out
    if out is None and chosen == names:
        out = ROOT / "docs" / "compatibility.md"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
