"""`python -m bench`: run every benchmark against the simulator, print a table, write docs/benchmarks.md.

    python -m bench                 the full suite (a few minutes on 2 cores), writes docs/benchmarks.md
    python -m bench --quick         smaller counts, a smoke run (prints; writes only with --out)
    python -m bench --only pool,dispatch
    python -m bench --profile DIR   every spawned server runs under cProfile, stats saved in DIR

Everything runs on 127.0.0.1 and stops by itself; nothing touches Discord.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from . import common
from .common import ROOT, Figure, Section, machine

Runner = Callable[[bool, Path], Awaitable[Section]]


def _runners() -> dict[str, Runner]:
    from . import coldstart, dispatch, handoff, memory, prompt_check, rest_count, shared, throughput

    return {
        "rest": rest_count.run,
        "handoff": handoff.run,
        "pool": throughput.run,
        "dispatch": dispatch.run,
        "memory": memory.run,
        "coldstart": coldstart.run,
        "prompt": prompt_check.run,
        "shared": shared.run,
    }


ANALYSIS = """\
## Reading the figures

- **A shared 2-core VM.** The machine above is small and was shared with other work while the suite ran (load
  averages in the header); on the day of this run it was slower than on earlier days (hand-off p50 moved
  between 6 and 10 ms from one run to the next within the same hour; its p99, below). Ratios
  measured within one run (cold start, the pool against its ideal) are the least sensitive to that; absolute
  rates (events per second, latencies) move with the CPU and with what else runs: repeated runs here
  differed by up to a third.
- **Hand-off.** Traced runs of 200 jobs split the path, at the median, into 1.0 ms from the simulator's write of
  the result to the server's read of it (the websocket), 2.3 ms in the server (parse, correlation, waking the
  call, rendering, the SDK's reply with its two thread hops to stdout) and 1.9 ms from the server's flush to the
  client's return (its read, parse and validation). The tail is not one pause of ours. In quiet runs p99 was 6–9
  ms, with one job per run 23–41 ms late between the simulator's write and the server's read; in busier minutes
  several jobs were 13–37 ms late, slow in different segments or in all three at once (the VM's steal time was ~2%
  of its CPU during such a run), and the simulator's own full collections (~30 ms, about once a run) land there at
  times. The full collections that had paused our calls for 65 ms are frozen away (see below). On this machine the
  < 20 ms target was met in 10 of 12 runs in the two hours before this table and in 1 of 5 runs earlier that
  night, when the machine was slower; this table is one run.
- **Event dispatch.** In a busy Midjourney channel most frames are the bot's messages about other people's
  jobs, 2–3 KB each, and `json.loads` of one takes most of the 20 µs per event that 50,000 events/s allow on
  this CPU. The gateway therefore judges a dispatch on its raw text first, and only when it begins exactly as
  Discord writes it (`{"t":"…","s":N,"op":0,"d":{`): an event type the engine does not want, a message in
  another channel, a message created by someone other than the bot, or one that names someone (`<@`) and never
  contains our user id is counted and skipped unparsed (its sequence number is kept). Any other layout is
  parsed in full, so a change in Discord's serializer costs speed, never events. The dispatch figure's
  details give the same path with the filter off, measured in the same run. Our own jobs' events (one in ten
  here) are parsed and applied: ~50–120 µs each (parse, update the job, wake its waiters). A busy channel
  delivers tens of events per second: the read loop is idle nearly all the time either way.
- **The pool over stdio.** The in-process row is the engine: scheduling, the gateway and correlation. The stdio
  rows add the MCP SDK's transport and two tool calls per job (the second also fetches the result's preview), in a
  server process whose work all runs on one event loop, so on one core. With 0.5 s jobs (90× a real job's pace)
  that core is busy nearly all the time on this machine: the server's CPU time was 90–100% of the wall time across
  runs during development (this run's share is in the row's details), about 17–19 ms per job. Of that, the SDK's
  own handling of a request costs ~1.4–1.8 ms of the main thread here (two requests per job; a bare one-tool
  `MCPServer` costs as much per request, and our tool code adds ~0.4 ms on top); fetching and shrinking a result's
  preview ~3 ms; the rest is the engine, mostly the websocket library's per-frame work, since each of the ten
  accounts' websockets receives the whole busy guild channel (~23 frames per job). At that load the wall time
  follows the CPU more than the schedule: nineteen runs of the same code within one hour (some with light tracing)
  gave 1.07 to 1.48. The SDK's stdio transport, which reads each request line through a worker thread and writes
  each response with two more, one at a time, slows down with the loop: in traced runs a thread hop took a median
  7 ms (p90 18 ms) inside the busy server against 0.16 ms in an idle process, and results waited seconds to go out
  (the result-to-return times under load). So that run's ratio is judged only when the server's CPU share shows
  its core was not the limit; otherwise the table gives it without a verdict, with the verdict it would have had.
  With 1.5 s jobs (30× a real job's pace) the server needs under half its core and the ratio is always judged
  (1.026 and 1.032 in two runs during development). It is not like-for-like with the 0.5 s rows: a three times
  longer ideal also thins out fixed start-up and tail costs, and the opening burst of a thousand calls still
  queues in the transport (result-to-return p99 of seconds there too). Tried and not kept: a pipe-based stdio
  transport (the event loop reading and writing the pipes itself) cut the result-to-return median under the 0.5 s
  load from ~7–13 s to ~1 s, but its ratios, 1.13–1.18, fall within the stock transport's spread, and it needs the
  SDK's private server internals; uvloop (no change); a shorter GIL switch interval (no change in the hop times).
- **Cold start.** What our server adds to the SDK's own start-up: its modules (pydantic models, the
  parameter and content grammars: ~50–60 ms here) and registering seven tools instead of one (the SDK
  builds each tool's input and output JSON schemas: ~65 ms). The HTTP transport (httpcore2, h11), the
  websocket module and the CA bundle, which the bare server never loads, are loaded in a worker thread after
  the lifespan has returned, so `initialize` is answered meanwhile. Process start-up on this machine varies by
  ±15% from one spawn to the next, so the medians of 15 interleaved runs still move by a few percent.
- **Memory.** Eviction bounds the store: past `MJ_STORE_LIMIT` finished jobs, RSS stops growing.

## What the suite changed (item 3 of issue 6)

Measured during development on the same machine; before → after.

- **Scheduling was O(n²) in a burst** (`Engine._pump`): every submission and every release asked every waiting
  job for a slot. A thousand jobs at once made the server CPU-bound; now it stops at the first job that
  cannot be placed when no slot is free anywhere. It had been 13% of the server's CPU in a profile of the
  stdio pool run; it is now negligible.
- **Buttons were pydantic models** (`models.Button`): ~1 KiB and several µs each, nine or more per job kept
  in the store. Now a slotted dataclass: memory per finished job 18.2 → 8.5 KiB; RSS with the default
  5,000-job store full 138 → 89 MiB.
- **Other users' messages were fully parsed** (`Engine._correlate`): a message that names someone and never us
  is another user's job; it is now dropped before the content grammar runs (17 → 8 µs per such message).
- **Start-up loaded the CA bundle once per HTTP client** (~50 ms each: one per account plus the server's own).
  One TLS context is now shared and loaded in a thread while the modules import; the websocket library
  (httpx2.websockets, wsproto, h11), Pillow (through `inputs` → `preview`) and argparse are imported when first
  needed. Cold start ratio 1.32 → 1.16–1.24 (noisy, see above).
- **Start-up still loaded the HTTP stack before answering `initialize`** (the TLS preload thread also pulled
  the httpcore2 import into a race for the GIL with the main imports): the transport, the websocket module and
  the CA bundle now load in a worker thread while the client's `initialize` is answered; tools wait for the
  Discord side to be up. Cold start 1.29 → 1.08–1.13 in runs on the same day.
- **Every gateway frame was parsed** before the engine could drop it: 42,464 events/s in the first full run.
  The raw-text pre-filter (`FramePrefilter.skips`, engine/prefilter.py) skips other users' and other
  channels' messages and the events nobody wants unparsed. A message of another user that the engine
  follows (a job looked up by its id) is kept by id, so its later edits are still read.
- **Full garbage collections paused tool calls**: the server keeps ~90,000 objects from start-up (the SDK's
  models, the HTTP stack), and each gen-2 collection walked them all: 65 and 69 ms pauses in one hand-off
  run, the worst of its latencies. `gc.freeze()` once the Discord side is up: no pause over 7 ms in the same
  run.
- **The simulator could not stop with jobs queued**: a cancelled job started the next queued one on a closed task
  group and the process hung; it now starts nothing while stopping. The simulator also records when it sends
  each final result (`SimulatorServer.results_sent()`), the hand-off benchmark's start.
"""


def _table(sections: list[Section]) -> list[str]:
    rows = ["| figure | value | target | verdict |", "|---|---|---|---|"]
    for section in sections:
        rows += [f"| {f.name} | {f.value} | {f.target} | {f.verdict} |" for f in section.figures]
    return rows


def _report(sections: list[Section], info: dict[str, str], command: str, seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"One run of `{command}` (the suite in `bench/`), against the in-repo simulator on 127.0.0.1. "
        "Rerun it with that command (a few minutes on 2 cores; `python -m bench --quick` is a smaller smoke run "
        "that prints the table without writing this file).",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        f"| run time | {seconds:.0f} s |",
        "",
        "## Results",
        "",
        *_table(sections),
        "",
    ]
    met = [f for s in sections for f in s.figures if f.met is True]
    missed = [f for s in sections for f in s.figures if f.met is False]
    waived = [f for s in sections for f in s.figures if f.waived]
    summary = f"{len(met)} targets met, {len(missed)} not met"
    if waived:
        summary += f", {len(waived)} not applied in this run (see below)"
    listed = [f"- {f.name}: {f.value} (target {f.target})" for f in missed]
    listed += [f"- Not applied: {f.name}: {f.value} ({f.waived})" for f in waived]
    lines += [summary + (":" if listed else "."), *(["", *listed] if listed else [])]
    lines += ["", ANALYSIS, "## How each figure is measured", ""]
    for section in sections:
        lines += [f"### {section.title}", "", section.method, ""]
        lines += [f"- **{f.name}**: {f.note}" for f in section.figures if f.note]
        lines += [f"- {d}" for d in section.details]
        lines += [f"- took {section.seconds:.0f} s", ""]
    return "\n".join(lines).rstrip() + "\n"


def _print_table(sections: list[Section]) -> None:
    figures: list[Figure] = [f for s in sections for f in s.figures]
    width = max((len(f.name) for f in figures), default=10)
    value_width = max((len(f.value) for f in figures), default=5)
    target_width = max((len(f.target) for f in figures), default=6)
    print(f"{'figure':<{width}}  {'value':>{value_width}}  {'target':<{target_width}}  verdict")
    for f in figures:
        verdict = f.verdict.replace("*", "")
        print(f"{f.name:<{width}}  {f.value:>{value_width}}  {f.target:<{target_width}}  {verdict}")


async def _run(names: list[str], quick: bool, workdir: Path) -> list[Section]:
    runners = _runners()
    sections: list[Section] = []
    for name in names:
        started = time.monotonic()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            section = await runners[name](quick, workdir)
        except Exception as exc:
            traceback.print_exc()
            section = Section(name, [Figure(name, "error", "—", False, f"{type(exc).__name__}: {exc}")], "")
        print(f"[bench] {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        sections.append(section)
    return sections


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; write the report (full runs of every benchmark, or with --out)."""
    names = list(_runners())
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--out", type=Path, help="write the report here (default docs/benchmarks.md, full runs)")
    parser.add_argument("--profile", type=Path, help="run spawned servers under cProfile, stats in this folder")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",")] if args.only else names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        common.PROFILE_DIR = args.profile.resolve()

    info = machine()
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcp-midjourney-bench-") as tmp:
        sections = anyio.run(_run, chosen, args.quick, Path(tmp))
    seconds = time.monotonic() - started
    load_after = os.getloadavg()
    info["load average (1/5/15 min)"] = (
        f"{' / '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} at the end"
    )
    _print_table(sections)
    out = args.out
    if out is None and not args.quick and chosen == names:
        out = ROOT / "docs" / "benchmarks.md"
    if out is not None:
        command = "python -m bench" + (" --quick" if args.quick else "")
        if args.only:
            command += f" --only {args.only}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_report(sections, info, command, seconds), encoding="utf-8")
        print(f"\nwrote {out}", file=sys.stderr)
    return 0 if all(f.value != "error" for s in sections for f in s.figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
