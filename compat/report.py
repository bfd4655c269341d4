"""docs/compatibility.md from the rows of one run: the table, then each row's details and what failed, and why."""

from __future__ import annotations

from typing import Any

from .runner import Row

INTRO = """\
Each framework's own MCP client and tool objects, installed from the package index into a venv of its own,
against this server (spawned by the framework over stdio, or started with `mcp-midjourney serve --transport
http` for the HTTP rows) and the in-repo simulator, at the framework's defaults. No LLM runs: a scripted "model"
calls the tools as the framework's agent runtime calls them and reads only what the framework hands it back
(a result it cannot read, such as "An error occurred while running the tool. Please try again", makes it call
again with the same arguments, up to {tries} times; a job still running makes it follow the result's own hint,
`get_message` with the message_id and wait_seconds the text names). The flow is imagine → press U1 → a last
plain `get_message` of the upscale. Simulated jobs take {job_seconds:g} s, as real ones take 30–90 s.

- **jobs paid**: jobs the simulated Midjourney bot started for the row (imagine / upscale); one imagine and one
  upscale is right. Each is one `POST /interactions` the server sent (the total is in the details).
- **schemas**: the framework's own converters run over all seven tools' input schemas (which ones: details).
- **model receives**: what the framework gives the model for the finished grid and for the last get_message:
  text and image blocks (image sizes are base64 characters or bytes, as the framework holds them),
  `structured` when it hands over structuredContent as JSON, and "image as base64 text" when a preview
  reaches the model as text.
"""


def _quoted(requirement: str) -> str:
    return f"'{requirement}'" if any(c in requirement for c in "[]<>,") else requirement


def _transport(row: Row) -> str:
    """'stdio', 'http', or 'stdio, README settings: client_session_timeout_seconds=60, MJ_PREVIEW=off'."""
    if not row.tuned:
        return row.transport
    settings = [f"{k}={v}" for k, v in (*row.framework.tuned, *row.framework.server_tuned)]
    return f"{row.transport}, README settings: {', '.join(settings)}"


def _installs(rows: list[Row]) -> str:
    failed = sorted({r.framework.title for r in rows if r.install_error})
    return f"{', '.join(failed)} did not install." if failed else "Every framework installed on Python 3.11."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _received(parts: list[str]) -> str:
    return " + ".join(parts) if parts else "—"


def _steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in report.get("steps", [])}


def _failures(results: dict[str, str | None]) -> dict[str, str]:
    return {tool: error for tool, error in results.items() if error and not error.startswith("warn:")}


def _schema_summary(report: dict[str, Any]) -> str:
    """'all 7 (2 converters)', or each converter that fails some tool: 'transform_schema: 3 of 7 fail'."""
    schemas: dict[str, dict[str, str | None]] = report.get("schemas") or {}
    if not schemas:
        return "—"
    cells = []
    for converter, results in schemas.items():
        failed = _failures(results)
        if failed:
            cells.append(f"**{converter}: {len(failed)} of {len(results)} fail**")
        elif any(results.values()):
            cells.append(f"{converter}: converts, with warnings")
    if not cells:
        count = max(len(r) for r in schemas.values())
        return f"all {count} ({len(schemas)} converter{'s' if len(schemas) > 1 else ''})"
    return "; ".join(cells)


def _calls(step: dict[str, Any]) -> str:
    """The calls of one step, runs of the same tool and outcome folded: 'imagine ×6 error: …; get_message …'."""
    groups: list[tuple[str, str, int, float]] = []
    for call in step.get("calls", []):
        outcome = call["outcome"]
        key = outcome if outcome.startswith("error") else outcome.split(" ")[0]
        causes = [p for p in call.get("parts", []) if "cause:" in p]
        if key.startswith("error") and causes:
            key += f" [{causes[0].removeprefix('error text ')}]"
        if groups and groups[-1][0] == call["tool"] and groups[-1][1] == key:
            tool, _, count, seconds = groups[-1]
            groups[-1] = (tool, key, count + 1, seconds + call["seconds"])
        else:
            groups.append((call["tool"], key, 1, call["seconds"]))
    text = []
    for tool, outcome, count, seconds in groups:
        times = f" ×{count}, {seconds / count:.1f} s each" if count > 1 else f", {seconds:.1f} s"
        text.append(f"{tool}{times} → {outcome}")
    return "; ".join(text)


def _problems(row: Row) -> list[str]:
    """What this row shows wrong, each with its reason."""
    report = row.report
    name = f"{row.framework.title} ({_transport(row)})"
    if row.install_error:
        return [f"{name}: does not install on Python 3.11: {row.install_error}"]
    if report.get("connect_error"):
        return [f"{name}: does not connect: {report['connect_error']}"]
    found = []
    for converter, results in (report.get("schemas") or {}).items():
        by_error: dict[str, list[str]] = {}
        for tool, error in results.items():
            if error:
                said = (
                    error.removeprefix("warn: ") + " (it converts, with that left in)"
                    if error.startswith("warn:")
                    else error
                )
                by_error.setdefault(_one_line(said), []).append(f"`{tool}`")
        for error, tools in by_error.items():
            found.append(f"{name}: {converter} on {', '.join(tools)}: {error}")
    steps = _steps(report)
    for step_name in ("imagine", "U1", "get_message"):
        step = steps.get(step_name)
        if step is None:
            if not report.get("flow_ok"):
                break
            continue
        if not step.get("ok"):
            last = step["calls"][-1]["outcome"] if step.get("calls") else "no call made"
            found.append(f"{name}: {step_name} did not complete ({_calls(step)}); last: {last}")
            break
    imagine_jobs = row.jobs.get("imagine", 0)
    if imagine_jobs > 1:
        found.append(f"{name}: one imagine prompt paid for {imagine_jobs} jobs")
    for step in report.get("steps", []):
        for part in step.get("received", []):
            if "base64 text" in part:
                found.append(f"{name}: {step['name']}'s preview reaches the model as text ({part})")
    return found


def render(rows: list[Row], *, command: str, date: str, seconds: float, job_seconds: float, python: str) -> str:
    from .drivers import flow

    lines = [
        "# Compatibility with agent frameworks",
        "",
        f"One run of `{command}` on {date} (Python {python}, {seconds / 60:.0f} min). Rerun it with that "
        "command: it needs the package index to build the venvs; `--only NAME` runs one framework.",
        "",
        INTRO.format(tries=flow.TRIES, job_seconds=job_seconds),
        "| framework | version | transport | connects | schemas convert | imagine → U1 → get_message | jobs paid "
        "(imagine / upscale) | model receives: grid | model receives: last get_message |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        report = row.report
        steps = _steps(report)
        if row.install_error:
            lines.append(f"| {row.framework.title} | — | {row.transport} | does not install | — | — | — | — | — |")
            continue
        connects = f"yes, {len(report.get('tools', []))} tools" if report.get("connects") else "**no**"
        flow_ok = (
            "ok"
            if report.get("flow_ok")
            else "**failed** at " + next((s["name"] for s in report.get("steps", []) if not s.get("ok")), "connect")
        )
        jobs = f"{row.jobs.get('imagine', 0)} / {row.jobs.get('upscale', 0)}"
        grid = _received(steps.get("imagine", {}).get("received", []))
        last = _received(steps.get("get_message", {}).get("received", []))
        lines.append(
            f"| {row.framework.title} | {report.get('version') or '—'} | {_transport(row)} | {connects} | "
            f"{_schema_summary(report)} | {flow_ok} | {jobs} | {grid} | {last} |"
        )
    at_defaults = [r for r in rows if not r.tuned and not r.install_error]
    good = [r for r in at_defaults if r.report.get("flow_ok") and r.jobs.get("imagine") == 1]
    lines += [
        "",
        f"**{len(good)} of {len(at_defaults)} rows at the framework's defaults complete the flow with one job per "
        f"imagine**{'' if len(good) == len(at_defaults) else ' (the others: below)'}. " + _installs(rows),
    ]
    problems = [p for row in rows for p in _problems(row)]
    lines += ["", "## What fails, and why", ""]
    lines += [f"- {p}" for p in problems] or ["Nothing: every row completed with one job per imagine."]
    lines += ["", "## Each row", ""]
    for row in rows:
        report = row.report
        lines += [f"### {row.framework.title} over {_transport(row)}", ""]
        if row.framework.own:
            lines.append("- runs in this project's own venv (`pip install -e '.[test]'`)")
        else:
            lines.append(f"- installed with `pip install {' '.join(_quoted(r) for r in row.framework.install)}`")
        if row.install_error:
            lines += [f"- install failed: {row.install_error}", ""]
            continue
        for key, value in (report.get("settings") or {}).items():
            lines.append(f"- {'setting' if row.tuned else 'default'} `{key}`: {value}")
        for converter, results in (report.get("schemas") or {}).items():
            failed = {t: e for t, e in results.items() if e}
            verdict = "all convert" if not failed else "; ".join(f"`{t}`: {_one_line(e)}" for t, e in failed.items())
            lines.append(f"- schemas through {converter}: {verdict}")
        for step in report.get("steps", []):
            lines.append(f"- {step['name']}: {_calls(step)}")
        lines.append(f"- POST /interactions: {row.interactions}; jobs started by the bot: {row.jobs or 'none'}")
        if report.get("connect_error"):
            lines.append(f"- connect error: {report['connect_error']}")
        lines += [f"- note: {n}" for n in report.get("notes", [])]
        if report.get("seconds"):
            lines.append(f"- took {report['seconds']:.0f} s")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
