"""The job store's bounds and indexes, and configuration errors that name the variable."""

from __future__ import annotations

import logging

import pytest

from mcp_midjourney.config import ConfigError, RedactingFilter, load_settings
from mcp_midjourney.engine.store import Job, JobStore
from mcp_midjourney.models import JobStatus

GOOD = {"MJ_DISCORD_TOKEN": "made-up-token-abcdef", "MJ_CHANNEL_ID": "1069126859100524575"}


def test_store_finds_a_job_by_every_id_and_evicts_only_finished_ones() -> None:
    store = JobStore(max_finished=2)
    jobs = [Job(nonce=str(1000 + i), kind="imagine", prompt="p") for i in range(5)]
    for job in jobs:
        store.add(job)
    store.index(jobs[0], "555")
    store.index_uuid(jobs[0], "uuid-0")
    assert store.get("555") is jobs[0] and store.by_uuid("uuid-0") is jobs[0]
    for job in jobs[:4]:
        job.complete()
        store.finished(job)
    assert len(store) == 3  # two finished kept + one running
    assert store.get("1000") is None and store.get("555") is None and store.by_uuid("uuid-0") is None
    assert store.get("1003") is jobs[3] and store.get("1004") is jobs[4]
    assert jobs[4].status is JobStatus.QUEUED


def test_store_evicts_by_age() -> None:
    store = JobStore(max_finished=100, max_age_seconds=10)
    job = Job(nonce="1", kind="imagine", prompt="p")
    store.add(job)
    job.complete()
    store.finished(job)
    assert store.evict(now=job.finished_at + 11) == 1
    assert store.get("1") is None


def test_settings_defaults_and_ceiling() -> None:
    settings = load_settings(GOOD | {"MJ_WAIT_CEILING": "20"})
    assert settings.api_base == "https://discord.com/api/v9"
    assert settings.wait_ceiling == 20 and settings.default_wait == 20
    assert settings.guild_id is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["MJ_DISCORD_TOKEN", "MJ_CHANNEL_ID"]),
        (GOOD | {"MJ_CHANNEL_ID": "general"}, ["MJ_CHANNEL_ID"]),
        (GOOD | {"MJ_DISCORD_API_BASE": "discord.com"}, ["MJ_DISCORD_API_BASE"]),
        (GOOD | {"MJ_WAIT_CEILING": "500"}, ["MJ_WAIT_CEILING"]),
        (GOOD | {"MJ_DISCORD_TOKEN": "Bearer made-up-token-abcdef"}, ["MJ_DISCORD_TOKEN"]),
    ],
)
def test_bad_settings_name_the_variable(env, names) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    for name in names:
        assert name in str(info.value)
    assert "made-up-token-abcdef" not in str(info.value)


def test_redacting_filter_masks_the_token_in_messages_and_tracebacks() -> None:
    secret = "made-up-token-abcdef"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", (secret,), None)
    RedactingFilter([secret]).filter(record)
    assert secret not in record.getMessage() and "[REDACTED]" in record.getMessage()
    try:
        raise ValueError(f"boom {secret}")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter([secret]).filter(record)
    assert secret not in (record.exc_text or "")


def test_low_fast_time_is_reported_from_the_last_info() -> None:
    from pydantic import SecretStr

    from mcp_midjourney.config import Settings
    from mcp_midjourney.engine.engine import Engine

    engine = Engine(Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id="1069126859100524575"))
    account = engine.accounts[0]
    assert account.low_fast_time is None
    account.info = {"mode": "fast", "fast_hours_left": 0.4, "fast_percent_left": 2.7}
    assert "0.4 fast hours left" in (account.low_fast_time or "") and "relax" in (account.low_fast_time or "")
    account.info = {"mode": "relax", "fast_hours_left": 0.0, "fast_percent_left": 0.0}
    assert account.low_fast_time is None  # relax mode spends no fast time


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_DISCORD_TOKEN", "made-up-token-from-the-process")
    monkeypatch.setenv("MJ_WAIT_CEILING", "5")
    monkeypatch.setenv("MJ_CHANNEL_ID", "1069126859100524575")
    with pytest.raises(ConfigError, match="MJ_DISCORD_TOKEN is not set"):
        load_settings({"MJ_CHANNEL_ID": "1069126859100524575"})
    assert load_settings(GOOD).wait_ceiling == 40
    assert load_settings().wait_ceiling == 5  # and without a mapping, the process environment


def test_settings_built_in_code_take_keyword_arguments_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from mcp_midjourney.config import Settings

    monkeypatch.setenv("MJ_JOB_TIMEOUT", "5")
    settings = Settings(token=SecretStr("made-up-token-abcdef"), guild_id=None, channel_id="1069126859100524575")
    assert settings.job_timeout == 600 and settings.account_list()[0].token.get_secret_value() == "made-up-token-abcdef"


def test_variable_names_match_in_any_case_and_blank_means_the_default() -> None:
    settings = load_settings({"mj_discord_token": "made-up-token-abcdef", "MJ_CHANNEL_ID": " 1069126859100524575 "})
    assert settings.channel_id == "1069126859100524575"
    assert load_settings(GOOD | {"MJ_JOB_TIMEOUT": " ", "MJ_DISCORD_API_BASE": ""}).job_timeout == 600


def test_a_pool_stands_in_for_the_single_account_variables() -> None:
    import json

    entry = {"name": "a", "token": "made-up-token-a-abcdef", "channel_id": "100000000000000001"}
    settings = load_settings({"MJ_ACCOUNTS": json.dumps([entry])})
    assert settings.channel_id == "100000000000000001" and [a.name for a in settings.account_list()] == ["a"]
    with pytest.raises(ConfigError) as broken:
        load_settings({"MJ_ACCOUNTS": "[{"})
    assert "MJ_ACCOUNTS is not valid JSON" in str(broken.value)
    assert "MJ_DISCORD_TOKEN" not in str(broken.value)  # the user chose a pool: no nagging about the single account


def test_the_state_folder_is_the_platforms_data_folder_unless_set() -> None:
    from pathlib import Path

    import platformdirs

    assert load_settings(GOOD).state_dir == platformdirs.user_data_path("mcp-midjourney", appauthor=False)
    assert load_settings(GOOD | {"MJ_STATE_DIR": " /srv/mj "}).state_dir == Path("/srv/mj")


def test_startup_options_are_read_even_from_a_broken_configuration() -> None:
    from mcp_midjourney.config import read_startup

    env = {
        "MJ_DISCORD_TOKEN": "Bearer made-up-token-abcdef",
        "MJ_ACCOUNTS": '[{"token": "made-up-token-pool-abcdef", "channel_id": "nope"}]',
        "MJ_HTTP_TOKEN": " made-up-http-token ",
        "MJ_HTTP_ALLOWED_HOSTS": "mj.example, ,other.example",
        "MJ_LOG_LEVEL": "debug",
        "MJ_WAIT_CEILING": "forever",
    }
    with pytest.raises(ConfigError):
        load_settings(env)
    startup = read_startup(env)
    assert startup.http_token == "made-up-http-token" and startup.log_level == "DEBUG"
    assert startup.http_allowed_hosts == ("mj.example", "other.example")
    assert list(read_startup(env).tokens) == ["Bearer made-up-token-abcdef", "made-up-token-pool-abcdef"]
    assert read_startup({}).http_token is None and read_startup({}).log_level == "INFO"
