"""`mcp-midjourney doctor` as a user runs it: a subprocess against the simulator, its report on stdout."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from mcp_midjourney.commands.demo import server_env
from mcp_midjourney.commands.doctor import AccountDoctor, Check
from mcp_midjourney.config import load_settings
from mcp_midjourney.discord.rest import DiscordRest
from mcp_midjourney.simulator import SimulatorServer

CHECKS = ("configuration", "token", "guild and channel", "gateway session", "command index", "shared state")


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_midjourney", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def line_of(output: str, check: str) -> str:
    return next(line for line in output.splitlines() if line.split(maxsplit=1)[-1].startswith(check))


def test_every_check_passes_against_the_simulator(sim: SimulatorServer) -> None:
    run = doctor(server_env(sim))
    assert run.returncode == 0, run.stdout + run.stderr
    for check in CHECKS:
        assert line_of(run.stdout, check).split()[0] == "PASS"
    assert "signed in as sim_user" in run.stdout
    assert "/imagine found (id " in run.stdout and "version " in run.stdout
    assert "All 6 checks passed." in run.stdout
    assert sim.token not in run.stdout + run.stderr


def test_an_unreachable_shared_state_fails_its_check_with_the_fix(sim: SimulatorServer) -> None:
    from tests.redis_server import free_port

    pytest.importorskip("redis")
    run = doctor(server_env(sim, MJ_STATE_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert run.returncode == 1
    state_line = line_of(run.stdout, "shared state")
    assert state_line.split()[0] == "FAIL" and "MJ_STATE_URL=redis://127.0.0.1:" in state_line
    assert "fix: Start the Redis server" in run.stdout


def test_a_rejected_token_fails_its_check_with_the_fix_and_is_never_printed(sim: SimulatorServer) -> None:
    wrong = "MTA5NzA3NDg4MjIwMzMwMzkxMQ.wrong.token-that-discord-refuses"
    run = doctor(server_env(sim, MJ_DISCORD_TOKEN=wrong))
    assert run.returncode == 1
    token_line = line_of(run.stdout, "token")
    assert token_line.split()[0] == "FAIL" and "401" in token_line
    fix = run.stdout.splitlines()[run.stdout.splitlines().index(token_line) + 1]
    assert fix.strip().startswith("fix: MJ_DISCORD_TOKEN")
    for check in CHECKS[2:5]:
        assert line_of(run.stdout, check).split()[0] == "SKIP"
    assert "1 of 6 checks failed" in run.stdout
    assert wrong not in run.stdout + run.stderr
    assert "wrong.token" not in run.stdout + run.stderr


def test_a_missing_setting_fails_the_configuration_check(sim: SimulatorServer) -> None:
    env = server_env(sim)
    del env["MJ_CHANNEL_ID"]
    run = doctor(env)
    assert run.returncode == 1
    assert line_of(run.stdout, "configuration").split()[0] == "FAIL"
    assert "MJ_CHANNEL_ID" in run.stdout
    assert sim.token not in run.stdout + run.stderr


def test_an_unknown_channel_says_how_to_copy_the_id(sim: SimulatorServer) -> None:
    run = doctor(server_env(sim, MJ_CHANNEL_ID="123456789012345678"))
    assert run.returncode == 1
    assert line_of(run.stdout, "guild and channel").split()[0] == "FAIL"
    assert "Copy Channel ID" in run.stdout
    assert line_of(run.stdout, "token").split()[0] == "PASS"


# --- the channel check against Discord's real GET /channels/{id} answer (the simulator does not serve it) ---

GUILD, OTHER_GUILD, CHANNEL = "1121633108689698856", "1121633108689698999", "1121633108689698859"


def channel_check(answer: dict[str, Any] | None, guild_id: str | None, status: int = 200) -> Check:

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith(f"/channels/{CHANNEL}"):
            return httpx2.Response(status, json=answer)
        if request.url.path.endswith(f"/channels/{CHANNEL}/messages"):
            return httpx2.Response(200, json=[])
        return httpx2.Response(404, json={"message": "404: Not Found", "code": 0})

    settings = load_settings({"MJ_DISCORD_TOKEN": "x" * 30, "MJ_CHANNEL_ID": CHANNEL, "MJ_GUILD_ID": guild_id or ""})
    account = settings.account_list()[0]
    checker = AccountDoctor(settings, account, "", timeout=5)
    checker.rest = DiscordRest(settings.api_base, SecretStr("x" * 30), transport=httpx2.MockTransport(handler))

    async def run() -> Check:
        try:
            return await checker.channel()
        finally:
            await checker.rest.aclose()

    return anyio.run(run)


def test_the_channel_check_names_the_channel_and_catches_a_wrong_guild() -> None:
    text = {"id": CHANNEL, "type": 0, "guild_id": GUILD, "name": "midjourney"}
    check = channel_check(text, GUILD)
    assert check.status == "pass" and "#midjourney (text channel) in guild" in check.detail
    wrong = channel_check({**text, "guild_id": OTHER_GUILD}, GUILD)
    assert (
        wrong.status == "fail"
        and wrong.fix == f"Set MJ_GUILD_ID={OTHER_GUILD} (or MJ_CHANNEL_ID to a channel of guild {GUILD})."
    )
    unset = channel_check(text, None)
    assert unset.status == "fail" and unset.fix == f"Set MJ_GUILD_ID={GUILD}."
    dm = channel_check({"id": CHANNEL, "type": 1}, GUILD)
    assert dm.status == "fail" and "Unset MJ_GUILD_ID" in (dm.fix or "")
    assert channel_check({"id": CHANNEL, "type": 1}, None).status == "pass"
    missing = channel_check({"message": "Unknown Channel", "code": 10003}, GUILD, status=404)
    assert missing.status == "fail" and "Copy Channel ID" in (missing.fix or "")
    hidden = channel_check({"message": "Missing Access", "code": 50001}, GUILD, status=403)
    assert hidden.status == "fail" and "permissions" in (hidden.fix or "")
