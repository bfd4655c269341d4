"""Figure 5: memory — bytes per finished job in the store, and peak RSS after 100,000 jobs with eviction.

Jobs live their whole life through the engine's real event path (`Engine.dispatch_from`): created as
`imagine` creates them, then the bot's "Waiting to start" (with our nonce), a progress edit (naming the job
uuid) and the result (grid attachment, nine buttons). Frames are stamped from the real capture of a final
grid in tests/fixtures when it is there (a built-in message of the same shape otherwise), with an
18-word prompt.

Bytes per job: `tracemalloc` around `jobs` finished jobs kept in the store (no eviction). Peak RSS: a fresh
`python -m bench.memory` process runs 100,000 jobs with the store's default bound (`MJ_STORE_LIMIT`, 5,000
finished jobs); its RSS is read at a quarter of the way and at the end, and the store's size checked.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from .common import FIXTURES, ROOT, Figure, Section

ME = "1097074882203303911"
CHANNEL = "1121633108689698859"
GUILD = "1121633108689698856"
BOT = "936929561302675456"
PROMPT = (
    "a lighthouse on a basalt cliff in a winter storm, waves breaking, oil painting, dramatic light, "
    "muted palette --ar 3:2 --stylize 250"
)
CAPTURED_UUID = "a7cb1552-f779-4094-9afe-2acf22dae280"
CAPTURED_USER = "439110225975443468"
CAPTURED_CHANNEL = "1069126859100524575"
CAPTURED_ID = "1083788807800897597"


def _bot() -> dict[str, Any]:
    return {"id": BOT, "username": "Midjourney Bot", "discriminator": "9282", "bot": True, "avatar": "4a79ea7c"}


def _final_template() -> tuple[str, str]:
    """The result message as JSON text with placeholders (@UUID@, @ID@), and where it came from."""
    path = FIXTURES / "captured" / "gateway-message-create-imagine-final-grid.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))["d"]
        data["content"] = f"**{PROMPT}** - <@{CAPTURED_USER}> (fast)"
        text = json.dumps(data, separators=(",", ":"))
        for old, new in (
            (CAPTURED_UUID, "@UUID@"),
            (CAPTURED_USER, ME),
            (CAPTURED_CHANNEL, CHANNEL),
            (CAPTURED_ID, "@ID@"),
        ):
            text = text.replace(old, new)
        return text, "the captured final grid (tests/fixtures/captured)"
    buttons = [
        {"type": 2, "style": 2, "label": label, "custom_id": f"MJ::JOB::{action}::{i}::@UUID@"}
        for action, prefix in (("upsample", "U"), ("variation", "V"))
        for i, label in ((n, f"{prefix}{n}") for n in range(1, 5))
    ]
    data = {
        "id": "@ID@",
        "type": 0,
        "channel_id": CHANNEL,
        "author": _bot(),
        "content": f"**{PROMPT}** - <@{ME}> (fast)",
        "mentions": [{"id": ME, "username": "me"}],
        "attachments": [
            {
                "id": "1083788807381471404",
                "filename": "me_a_lighthouse_@UUID@.png",
                "url": f"https://cdn.discordapp.com/attachments/{CHANNEL}/1083788807381471404/me_a_lighthouse_@UUID@.png",
                "size": 1249332,
                "width": 1024,
                "height": 1024,
                "content_type": "image/png",
            }
        ],
        "components": [{"type": 1, "components": buttons[:4]}, {"type": 1, "components": buttons[4:]}],
        "embeds": [],
        "flags": 0,
    }
    return json.dumps(data, separators=(",", ":")), "a built-in message shaped like the capture"


class JobFeeder:
    """Runs jobs through an `Engine` (not connected) by dispatching their messages, as the gateway would."""

    def __init__(self, store_limit: int) -> None:
        from mcp_midjourney.config import load_settings
        from mcp_midjourney.engine.engine import Engine

        env = {
            "MJ_DISCORD_TOKEN": "bench-token-not-a-secret",
            "MJ_CHANNEL_ID": CHANNEL,
            "MJ_GUILD_ID": GUILD,
            "MJ_STORE_LIMIT": str(store_limit),
        }
        self.engine = Engine(load_settings(env))
        self.account = self.engine.accounts[0]
        self.account.gateway.user_id = ME
        self.final, self.source = _final_template()
        self.count = 0

    def run(self, jobs: int) -> int:
        """Run `jobs` jobs to completion; return how many completed."""
        from mcp_midjourney.engine.store import Job, SlashCommand
        from mcp_midjourney.midjourney import imagine_options, normalise_prompt

        engine, account, dispatch = self.engine, self.account, self.engine.dispatch_from
        completed = 0
        for _ in range(jobs):
            n = self.count = self.count + 1
            nonce = str(1_500_000_000_000_000_000 + 8 * n)
            interaction = str(1_500_000_000_000_000_001 + 8 * n)
            progress_id = str(1_500_000_000_000_000_002 + 8 * n)
            result_id = str(1_500_000_000_000_000_003 + 8 * n)
            job_uuid = f"{n:08x}-f779-4094-9afe-2acf22dae280"
            job = Job(nonce=nonce, kind="imagine", prompt=PROMPT, normalised_prompt=normalise_prompt(PROMPT))
            # What `Engine.imagine` keeps: the request, data (the command's name and options).
            job.request = SlashCommand("imagine", imagine_options(PROMPT))
            job.submitted, job.account = True, account.name
            engine.store.add(job)
            dispatch(account, "INTERACTION_SUCCESS", {"id": interaction, "nonce": nonce})
            head = {"channel_id": CHANNEL, "author": _bot(), "embeds": [], "flags": 0}
            waiting = {
                **head,
                "id": progress_id,
                "nonce": nonce,
                "content": f"**{PROMPT}** - <@{ME}> (Waiting to start)",
                "interaction": {"id": interaction, "type": 2, "name": "imagine", "user": {"id": ME}},
                "attachments": [],
                "components": [],
            }
            dispatch(account, "MESSAGE_CREATE", waiting)
            progress = {
                **head,
                "id": progress_id,
                "content": f"**{PROMPT}** - <@{ME}> (31%) (fast)",
                "attachments": [
                    {
                        "id": "1",
                        "filename": f"{job_uuid}_grid_0.webp",
                        "url": f"https://cdn.discordapp.com/attachments/{CHANNEL}/1/{job_uuid}_grid_0.webp",
                    }
                ],
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {
                                "type": 2,
                                "style": 4,
                                "label": "Cancel Job",
                                "custom_id": f"MJ::CancelJob::ByJobid::{job_uuid}",
                            }
                        ],
                    }
                ],
            }
            dispatch(account, "MESSAGE_UPDATE", progress)
            dispatch(account, "MESSAGE_DELETE", {"id": progress_id, "channel_id": CHANNEL})
            final = json.loads(self.final.replace("@UUID@", job_uuid).replace("@ID@", result_id))
            dispatch(account, "MESSAGE_CREATE", final)
            completed += job.result_message_id == result_id and not job.in_flight
        return completed


def _status_kib(field: str) -> int:
    """A size from /proc/self/status in KiB (VmRSS: now, VmHWM: peak), or the rusage peak where /proc is absent.

    Not `ru_maxrss` when /proc is there: on Linux it carries over a fork, so a child of a big parent would
    report the parent's size as its own peak.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _rss_kib() -> int:
    """Current resident set size in KiB."""
    return _status_kib("VmRSS")


@dataclass
class PerJob:
    """tracemalloc's view of finished jobs kept in the store."""

    jobs: int
    completed: int
    bytes_total: int
    source: str

    @property
    def bytes_per_job(self) -> float:
        return self.bytes_total / max(1, self.jobs)


async def per_job(jobs: int = 2000) -> PerJob:
    """Bytes the store holds per finished job (tracemalloc, no eviction)."""
    feeder = JobFeeder(store_limit=max(10, jobs + 10))
    feeder.run(20)  # warm caches and interned strings before measuring
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    completed = feeder.run(jobs)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return PerJob(jobs, completed, grown, feeder.source)


@dataclass
class Bounded:
    """RSS of a process that ran many jobs through a bounded store."""

    jobs: int
    store_limit: int
    completed: int
    store_len: int
    rss_start_kib: int
    rss_quarter_kib: int
    rss_end_kib: int
    peak_kib: int
    seconds: float


async def bounded(jobs: int = 100_000, store_limit: int = 5000) -> Bounded:
    """Run `jobs` jobs through a store bounded at `store_limit`; measure RSS in this process."""
    feeder = JobFeeder(store_limit=store_limit)
    gc.collect()
    start = _rss_kib()
    started = time.monotonic()
    quarter = max(1, jobs // 4)
    completed = feeder.run(quarter)
    rss_quarter = _rss_kib()
    completed += feeder.run(jobs - quarter)
    gc.collect()
    return Bounded(
        jobs=jobs,
        store_limit=store_limit,
        completed=completed,
        store_len=len(feeder.engine.store),
        rss_start_kib=start,
        rss_quarter_kib=rss_quarter,
        rss_end_kib=_rss_kib(),
        peak_kib=_status_kib("VmHWM"),
        seconds=time.monotonic() - started,
    )


def bounded_in_subprocess(jobs: int, store_limit: int) -> Bounded:
    """`bounded` in a fresh interpreter, so its RSS is the engine's alone (plus Python and its imports)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--jobs", str(jobs), "--limit", str(store_limit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return Bounded(**json.loads(output.strip().splitlines()[-1]))


def figures(job: PerJob, big: Bounded) -> list[Figure]:
    """The table rows."""
    growth = big.rss_end_kib - big.rss_quarter_kib
    bounded_ok = big.store_len <= big.store_limit and growth < 0.1 * big.rss_quarter_kib
    return [
        Figure(
            "Memory per finished job (store)",
            f"{job.bytes_per_job / 1024:.1f} KiB",
            "—",
            None,
            f"tracemalloc over {job.jobs:,} jobs ({job.completed:,} completed), every id indexed, buttons and "
            f"URLs kept",
        ),
        Figure(
            f"Peak RSS, {big.jobs:,} jobs, store bounded at {big.store_limit:,}",
            f"{big.peak_kib / 1024:.0f} MiB",
            "bounded: no growth after the bound fills",
            bounded_ok,
            f"RSS {big.rss_start_kib / 1024:.0f} MiB before, {big.rss_quarter_kib / 1024:.0f} MiB after "
            f"{big.jobs // 4:,} jobs, {big.rss_end_kib / 1024:.0f} MiB after {big.jobs:,} "
            f"({growth / 1024:+.1f} MiB); {big.store_len:,} jobs in the store; {big.completed:,} completed "
            f"in {big.seconds:.1f} s",
        ),
    ]


async def run(quick: bool, workdir: Path) -> Section:
    """Measure and describe figure 5."""
    started = time.monotonic()
    job = await per_job(1000 if quick else 5000)
    big = await anyio.to_thread.run_sync(bounded_in_subprocess, 20_000 if quick else 100_000, 5000)
    return Section(
        "Memory",
        figures(job, big),
        "Jobs run their whole life through `Engine.dispatch_from` (created as `imagine` creates them, then "
        "INTERACTION_SUCCESS, the nonce'd first message, a progress edit naming the uuid, its delete, and the "
        f"result with nine buttons); the result is stamped from {job.source}. Bytes per job: tracemalloc "
        "across jobs kept in the store. Peak RSS: a fresh `python -m bench.memory` process (Python, the "
        "engine and its imports: mcp, pydantic, httpx2) running the jobs through the store's default bound "
        "(`MJ_STORE_LIMIT` = 5,000 finished jobs).",
        time.monotonic() - started,
    )


def main() -> None:
    """`python -m bench.memory --jobs N --limit L`: run `bounded` and print its result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args()
    result = anyio.run(lambda: bounded(args.jobs, args.limit))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
