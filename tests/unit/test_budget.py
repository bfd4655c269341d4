"""The usage budget: exact limits, sliding windows, refunds, persistence, threads and processes sharing the state's
SQLite file, and an old JSON budget file carried over once."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_midjourney.config import ConfigError, load_settings
from mcp_midjourney.engine.budget import (
    DAY,
    HOUR,
    Budget,
    BudgetExceeded,
    BudgetLimits,
    Limits,
    budget_limits,
    budget_path,
)
from mcp_midjourney.engine.state import StateError
from mcp_midjourney.engine.state_sqlite import SqliteStore


def JsonFileStore(path: Path) -> SqliteStore:
    """The shared state's SQLite store in the folder where the budget's file lived."""
    return SqliteStore(path.with_name("state.sqlite3"))


def saved(path: Path) -> list[float]:
    """The times of the default account's job spends the state's file holds."""
    return [at for at, _ in SqliteStore(path.with_name("state.sqlite3")).load().get("default", {}).get("job", [])]


T0 = 1_780_000_000.0  # a fixed "now" (2026-05-28T20:26:40Z)


class Clock:
    """A settable clock: tests move time instead of sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits(**values: int | None) -> BudgetLimits:
    return BudgetLimits(total=Limits(**values))


def test_five_per_hour_the_sixth_is_refused_until_the_first_ages_out(tmp_path: Path) -> None:
    clock = Clock()
    budget = Budget(limits(jobs_per_hour=5), JsonFileStore(tmp_path / "budget.json"), clock=clock)
    for step in range(5):
        clock.now = T0 + step * 60
        budget.spend("job")
    clock.now = T0 + 600
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job")
    assert refused.value.frees_at == T0 + HOUR
    message = str(refused.value)
    assert "5 jobs (upscales included) in the last hour, limit 5 (MJ_MAX_JOBS_PER_HOUR)" in message
    assert "2026-05-28T21:26:40Z" in message
    assert "(in 50 min)" in message
    clock.now = T0 + HOUR - 1
    with pytest.raises(BudgetExceeded):
        budget.spend("job")
    clock.now = T0 + HOUR  # the first spend is exactly one hour old: it no longer counts
    budget.spend("job")


def test_day_window_slides_and_reports_hours(tmp_path: Path) -> None:
    clock = Clock()
    budget = Budget(limits(jobs_per_day=2), JsonFileStore(tmp_path / "budget.json"), clock=clock)
    budget.spend("job")
    clock.now = T0 + 2 * HOUR
    budget.spend("job")
    clock.now = T0 + 3 * HOUR
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job")
    assert refused.value.frees_at == T0 + DAY
    assert "in the last 24 hours" in str(refused.value)
    assert "(in 21 h 0 min)" in str(refused.value)
    clock.now = T0 + DAY + 1
    budget.spend("job")


def test_the_binding_limit_is_the_one_that_frees_last(tmp_path: Path) -> None:
    clock = Clock()
    budget = Budget(limits(jobs_per_hour=2, jobs_per_day=3), None, clock=clock)
    budget.spend("job")
    budget.spend("job")
    clock.now = T0 + HOUR
    budget.spend("job")
    clock.now = T0 + HOUR + 10
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job")
    assert refused.value.frees_at == T0 + DAY
    assert "MJ_MAX_JOBS_PER_DAY" in str(refused.value)


def test_refund_gives_the_slot_back(tmp_path: Path) -> None:
    budget = Budget(limits(jobs_per_hour=1), JsonFileStore(tmp_path / "budget.json"), clock=Clock())
    spend = budget.spend("job")
    with pytest.raises(BudgetExceeded):
        budget.spend("job")
    budget.refund(spend)
    assert budget.remaining()["jobs_this_hour"] == 1
    budget.spend("job")
    budget.refund(spend)  # refunding twice gives back nothing more than the one spend
    assert budget.remaining()["jobs_this_hour"] == 0


def test_count_spends_several_at_once_or_none(tmp_path: Path) -> None:
    budget = Budget(limits(jobs_per_hour=5), JsonFileStore(tmp_path / "budget.json"), clock=Clock())
    spend = budget.spend("job", count=4)
    with pytest.raises(BudgetExceeded):
        budget.spend("job", count=2)
    assert budget.remaining()["jobs_this_hour"] == 1
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job", count=6)
    assert "more than the limit allows" in str(refused.value)
    budget.refund(spend)
    assert budget.remaining()["jobs_this_hour"] == 5


def test_upscales_count_as_jobs_unless_limited_apart() -> None:
    shared = Budget(limits(jobs_per_hour=2), None, clock=Clock())
    shared.spend("upscale")
    shared.spend("job")
    with pytest.raises(BudgetExceeded):
        shared.spend("upscale")
    assert shared.remaining()["upscales_this_hour"] == 0
    assert shared.describe() == "Budget: jobs left 0/2 this hour (upscales count as jobs)"

    apart = Budget(limits(jobs_per_hour=1, upscales_per_hour=2), None, clock=Clock())
    apart.spend("job")
    apart.spend("upscale")
    apart.spend("upscale")
    with pytest.raises(BudgetExceeded) as refused:
        apart.spend("upscale")
    assert "2 upscales in the last hour, limit 2 (MJ_MAX_UPSCALES_PER_HOUR)" in str(refused.value)
    assert apart.remaining() == {
        "jobs_this_hour": 0,
        "jobs_today": None,
        "upscales_this_hour": 0,
        "upscales_today": None,
    }


def test_per_account_and_total_limits() -> None:
    budget = Budget(
        BudgetLimits(total=Limits(jobs_per_hour=3), accounts={"a": Limits(jobs_per_hour=1)}), None, clock=Clock()
    )
    budget.spend("job", "a")
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job", "a")
    assert "for account 'a'" in str(refused.value)
    budget.spend("job", "b")
    budget.spend("job", "c")
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("job", "b")
    assert "3 jobs (upscales included) in the last hour, limit 3" in str(refused.value)
    assert budget.remaining("a")["jobs_this_hour"] == 0


def test_remaining_and_describe() -> None:
    budget = Budget(limits(jobs_per_hour=5, jobs_per_day=50), None, clock=Clock())
    budget.spend("job")
    budget.spend("job")
    assert budget.remaining() == {
        "jobs_this_hour": 3,
        "jobs_today": 48,
        "upscales_this_hour": 3,
        "upscales_today": 48,
    }
    assert budget.describe() == "Budget: jobs left 3/5 this hour, 48/50 in 24 h (upscales count as jobs)"


def test_no_limits_means_no_record_and_no_description(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    budget = Budget(BudgetLimits(), JsonFileStore(path))
    for _ in range(100):
        budget.spend("job")
    assert saved(path) == []
    assert budget.describe() is None
    assert set(budget.remaining().values()) == {None}


def test_the_count_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "budget.json"
    clock = Clock()
    first = Budget(limits(jobs_per_hour=3), JsonFileStore(path), clock=clock)
    first.spend("job")
    first.spend("job")
    second = Budget(limits(jobs_per_hour=3), JsonFileStore(path), clock=clock)
    assert second.remaining()["jobs_this_hour"] == 1
    second.spend("job")
    with pytest.raises(BudgetExceeded):
        first.spend("job")  # the first instance re-reads the file and sees the other's spend
    assert saved(path) == [T0, T0, T0]


def test_old_spends_are_pruned_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    clock = Clock()
    budget = Budget(limits(jobs_per_day=100), JsonFileStore(path), clock=clock)
    budget.spend("job")
    clock.now = T0 + DAY + 5
    budget.spend("job")
    assert saved(path) == [T0 + DAY + 5]


def test_fifty_threads_against_a_limit_of_seven(tmp_path: Path) -> None:
    for path in (None, tmp_path / "budget.json"):
        budget = Budget(limits(jobs_per_hour=7), JsonFileStore(path) if path else None)
        results: list[bool] = []
        barrier = threading.Barrier(50)

        def attempt(
            budget: Budget = budget, results: list[bool] = results, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                budget.spend("job")
                results.append(True)
            except BudgetExceeded:
                results.append(False)

        threads = [threading.Thread(target=attempt) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results.count(True) == 7, path
        assert results.count(False) == 43


def _spend_in_process(
    path: str, tries: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[int]
) -> None:
    budget = Budget(limits(jobs_per_hour=7), JsonFileStore(Path(path)))
    start.wait()
    won = 0
    for _ in range(tries):
        try:
            budget.spend("job")
            won += 1
        except BudgetExceeded:
            pass
    out.put(won)


def test_processes_sharing_one_file_spend_exactly_the_limit(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    path = tmp_path / "budget.json"
    start = context.Event()
    out: multiprocessing.Queue[int] = context.Queue()
    workers = [context.Process(target=_spend_in_process, args=(str(path), 5, start, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    wins = [out.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(timeout=20)
    assert sum(wins) == 7
    assert len(saved(path)) == 7


def carried(tmp_path: Path, content: str) -> Budget:
    """A budget opened on a state folder that holds an old budget.json with `content`."""
    (tmp_path / "budget.json").write_text(content)
    return Budget(limits(jobs_per_hour=3), SqliteStore(tmp_path / "state.sqlite3", carry_from=tmp_path / "budget.json"))


def test_an_old_budget_file_is_carried_over_once(tmp_path: Path) -> None:
    import time

    old = {"version": 1, "spends": {"default": {"job": [[time.time() - 60, "a"], [time.time() - 30, "b"]]}}}
    budget = carried(tmp_path, json.dumps(old))
    assert budget.remaining()["jobs_this_hour"] == 1
    assert not (tmp_path / "budget.json").exists()
    assert (tmp_path / "budget.json.carried-over").exists()
    # Another server opening the same state (or a restart) does not count them again.
    again = Budget(
        limits(jobs_per_hour=3), SqliteStore(tmp_path / "state.sqlite3", carry_from=tmp_path / "budget.json")
    )
    assert again.remaining()["jobs_this_hour"] == 1


def test_a_corrupt_old_file_is_tolerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mcp_midjourney.engine.budget_store"):
        budget = carried(tmp_path, "{not json")
    assert "is corrupt" in caplog.text
    budget.spend("job")
    assert budget.remaining()["jobs_this_hour"] == 2


def test_readable_entries_of_a_damaged_old_file_still_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import time

    now = time.time()
    entries = [[now - 10, "a"], "x", None, [now - 5, "b"], [float("nan"), "c"], now - 1]
    damaged = {"version": 1, "spends": {"default": {"job": entries, "bogus": [1]}, "b": 3}}
    with caplog.at_level(logging.WARNING, logger="mcp_midjourney.engine.budget_store"):
        budget = carried(tmp_path, json.dumps(damaged))
    assert budget.remaining()["jobs_this_hour"] == 0  # two pairs and a bare time still count
    assert "ignored 5 malformed entries" in caplog.text


def test_an_unusable_state_file_is_an_error_naming_mj_state_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError) as refused:  # a file where the folder should be
        SqliteStore(blocker / "state.sqlite3")
    assert "MJ_STATE_URL" in str(refused.value)


GOOD = {"MJ_DISCORD_TOKEN": "made-up-token-abcdef", "MJ_CHANNEL_ID": "1069126859100524575"}


def test_budget_limits_come_from_the_settings() -> None:
    assert budget_limits(load_settings(GOOD)) == BudgetLimits()
    parsed = budget_limits(
        load_settings(
            GOOD | {"MJ_MAX_JOBS_PER_HOUR": "5", "MJ_MAX_JOBS_PER_DAY": " 40 ", "MJ_MAX_UPSCALES_PER_DAY": "0"}
        )
    )
    assert parsed.total == Limits(jobs_per_hour=5, jobs_per_day=40, upscales_per_hour=None, upscales_per_day=0)
    assert budget_limits(load_settings(GOOD | {"MJ_MAX_JOBS_PER_HOUR": "unlimited"})).total.jobs_per_hour is None
    with pytest.raises(ConfigError) as bad:
        load_settings(GOOD | {"MJ_MAX_JOBS_PER_HOUR": "five", "MJ_MAX_UPSCALES_PER_HOUR": "-1"})
    assert "MJ_MAX_JOBS_PER_HOUR must be a whole number" in str(bad.value)
    assert "MJ_MAX_UPSCALES_PER_HOUR must be 0 or more" in str(bad.value)


def test_zero_forbids_a_kind() -> None:
    budget = Budget(limits(upscales_per_day=0), None, clock=Clock())
    budget.spend("job")
    with pytest.raises(BudgetExceeded) as refused:
        budget.spend("upscale")
    assert "limit 0 (MJ_MAX_UPSCALES_PER_DAY)" in str(refused.value)


def test_the_record_lives_in_the_state_folder(tmp_path: Path) -> None:
    import platformdirs

    assert budget_path(load_settings(GOOD | {"MJ_STATE_DIR": "/srv/mj"})) == Path("/srv/mj/budget.json")
    assert budget_path(load_settings(GOOD)) == platformdirs.user_data_path("mcp-midjourney", appauthor=False) / (
        "budget.json"
    )
    budget = Budget.from_settings(load_settings(GOOD | {"MJ_MAX_JOBS_PER_HOUR": "1", "MJ_STATE_DIR": str(tmp_path)}))
    budget.spend("job")
    assert len(saved(tmp_path / "budget.json")) == 1


# --- limits of single accounts: from MJ_ACCOUNTS entries and MJ_ACCOUNT_MAX_*; charges that move ---------------


def pool_env(**extra: str) -> dict[str, str]:
    accounts = [
        {"name": "a", "token": "made-up-token-a-abcdef", "channel_id": "100000000000000001", "max_jobs_per_hour": 1},
        {"name": "b", "token": "made-up-token-b-abcdef", "channel_id": "100000000000000002"},
        {"name": "c", "token": "made-up-token-c-abcdef", "channel_id": "100000000000000003", "max_jobs_per_day": "4"},
    ]
    return {"MJ_ACCOUNTS": json.dumps(accounts), **extra}


def test_account_limits_come_from_their_entries_and_the_default_for_every_account() -> None:
    found = budget_limits(load_settings(pool_env(MJ_ACCOUNT_MAX_JOBS_PER_HOUR="5", MJ_MAX_JOBS_PER_DAY="20")))
    assert found.total == Limits(jobs_per_day=20)
    assert found.accounts == {
        "a": Limits(jobs_per_hour=1),  # its own value wins over the default
        "b": Limits(jobs_per_hour=5),
        "c": Limits(jobs_per_hour=5, jobs_per_day=4),
    }
    alone = budget_limits(load_settings(pool_env()))
    assert alone.total == Limits() and set(alone.accounts) == {"a", "c"}


@pytest.mark.parametrize("bad", [-1, "lots", 2.5, True, [3]])
def test_a_malformed_account_limit_is_a_config_error_naming_the_account(bad: object) -> None:
    entry = {"name": "z", "token": "made-up-token-z-abcdef", "channel_id": "100000000000000009"}
    env = {"MJ_ACCOUNTS": json.dumps([entry | {"max_jobs_per_day": bad}])}
    with pytest.raises(ConfigError) as error:
        load_settings(env)
    assert "account 'z'" in str(error.value) and "max_jobs_per_day" in str(error.value)


def test_a_malformed_account_default_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="MJ_ACCOUNT_MAX_UPSCALES_PER_HOUR"):
        load_settings(GOOD | {"MJ_ACCOUNT_MAX_UPSCALES_PER_HOUR": "many"})


def test_a_charge_moves_to_the_account_that_runs_the_job_only_if_its_own_budget_takes_it(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "budget.json"
    budget = Budget(
        BudgetLimits(total=Limits(jobs_per_hour=10), accounts={"a": Limits(jobs_per_hour=1)}),
        JsonFileStore(path),
        clock=clock,
    )
    first = budget.spend("job", "b")
    clock.now += 60
    moved = budget.move(first, "a")
    assert moved.account == "a" and moved.ids == first.ids
    assert budget.remaining("a")["jobs_this_hour"] == 0
    assert budget.remaining("b")["jobs_this_hour"] == 9  # the total did not change: one spend, counted once
    second = budget.spend("job", "b")
    assert not budget.fits(second, "a")
    with pytest.raises(BudgetExceeded, match="for account 'a'"):
        budget.move(second, "a")
    assert budget.fits(second, "b") and budget.fits(second, "c")
    # The moved spend keeps its time: account a frees up an hour after the first spend, not after the move.
    clock.now = T0 + HOUR + 1
    assert budget.fits(second, "a")
    # And the file holds the move: another process sees the spend under "a".
    record = SqliteStore(path.with_name("state.sqlite3")).load()
    assert [entry[1] for entry in record["a"]["job"]] == list(first.ids)
    budget.refund(moved)
    assert not SqliteStore(path.with_name("state.sqlite3")).load().get("a", {}).get("job")


# --- the arithmetic alone, and the store behind its interface ------------------------------------------------------


def test_the_arithmetic_decides_on_a_record_with_no_store() -> None:
    from mcp_midjourney.engine import budget_rules as rules

    total = limits(jobs_per_hour=2)
    record: rules.Record = {"a": {"job": [(T0 - 1800, "x"), (T0 - 600, "y")]}}
    refused = rules.refusal(total, record, "job", "b", T0, 1)
    assert refused is not None and refused.frees_at == T0 + 1800 and "in 30 min" in str(refused)
    assert rules.refusal(total, record, "job", "b", T0 + 1801, 1) is None
    assert rules.remaining(total, record, "a", T0)["jobs_this_hour"] == 0
    spend = rules.Spend(kind="job", account="a", at=T0 - 600, ids=("y",))
    assert rules.move(record, spend, "b") and record["b"]["job"] == [(T0 - 600, "y")]
    moved = rules.Spend(kind="job", account="b", at=spend.at, ids=spend.ids)
    assert rules.take_back(record, spend) == []  # it is no longer under account a
    assert rules.take_back(record, moved) == [(T0 - 600, "y")] and rules.take_back(record, moved) == []
    assert rules.prune({"a": {"job": [(T0 - DAY - 1, "old")]}}, T0) == {}
    assert rules.minutes(59) == "1 min" and rules.minutes(2 * HOUR + 300) == "2 h 5 min"


class CountingStore:
    """A store of our own behind the BudgetStore interface: another backend needs only these two methods."""

    def __init__(self) -> None:
        self.record: dict[str, dict[str, list[tuple[float, str]]]] = {}
        self.saves = 0

    def load(self) -> dict[str, dict[str, list[tuple[float, str]]]]:
        return json.loads(json.dumps(self.record))

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, dict[str, list[tuple[float, str]]]]]:
        record = self.load()
        yield record
        self.record, self.saves = record, self.saves + 1


def test_any_store_behind_the_interface_keeps_the_record() -> None:
    store = CountingStore()
    budget = Budget(limits(jobs_per_hour=1), store, clock=Clock())
    spend = budget.spend("job", "a")
    assert [entry[1] for entry in store.record["a"]["job"]] == list(spend.ids) and store.saves == 1
    with pytest.raises(BudgetExceeded):
        budget.spend("job", "a")
    assert store.saves == 1  # a refusal saves nothing
    budget.refund(spend)
    assert budget.remaining("a")["jobs_this_hour"] == 1
