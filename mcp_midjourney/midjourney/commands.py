"""Bodies of ``POST /interactions`` (protocol.md §1): slash commands and their options, button presses, modal submits.

Every option dict sent to Discord is built here (`imagine_options`, `describe_options`, `blend_options`,
`shorten_options`): callers name what they want, not the option types.

Command ids and versions change without notice, so nothing here hard-codes them: `find_command` reads
them from the application-command-index answer fetched at run time, and `slash_command` echoes the
command object back as the web client does.
"""

from __future__ import annotations

from typing import Any

from mcp_midjourney.models import MIDJOURNEY_BOT_ID

__all__ = [
    "CommandNotFound",
    "attachment_ref",
    "blend_options",
    "button_press",
    "describe_options",
    "find_command",
    "imagine_options",
    "modal_submit",
    "shorten_options",
    "slash_command",
]

JSON = dict[str, Any]

_INTERACTION_APPLICATION_COMMAND = 2
_INTERACTION_COMPONENT = 3
_INTERACTION_MODAL_SUBMIT = 5
_CHAT_INPUT = 1  # application command type of a slash command
_OPTION_STRING = 3
_OPTION_ATTACHMENT = 11
_ACTION_ROW = 1
_TEXT_INPUT = 4
_SELECT_MENU = 3


class CommandNotFound(LookupError):
    """The command index has no such command for that application (or the index is malformed)."""


def find_command(index: JSON, name: str, application_id: str = MIDJOURNEY_BOT_ID) -> JSON:
    """The command object named `name` of `application_id` from a ``GET …/application-command-index`` answer.

    A slash (chat input) command wins over a same-named message or user command; the name is matched
    exactly, then case-insensitively. Raises CommandNotFound with the names that do exist.
    """
    commands = index.get("application_commands") if isinstance(index, dict) else None
    if not isinstance(commands, list):
        raise CommandNotFound(f"/{name}: the command index has no 'application_commands' list")
    mine = [
        c
        for c in commands
        if isinstance(c, dict) and str(c.get("application_id", application_id)) == str(application_id)
    ]
    wanted = name.strip().lstrip("/") if isinstance(name, str) else ""
    exact = [c for c in mine if c.get("name") == wanted]
    found = exact or [c for c in mine if str(c.get("name")).casefold() == wanted.casefold()]
    if found:
        return next((c for c in found if c.get("type", _CHAT_INPUT) == _CHAT_INPUT), found[0])
    known = sorted({str(c.get("name")) for c in mine})
    raise CommandNotFound(
        f"/{wanted}: no such command of application {application_id} in the command index "
        f"(it has: {', '.join(known) or 'none'}). Is the Midjourney bot in this server or DM?"
    )


def slash_command(
    command: JSON,
    options: list[JSON],
    *,
    guild_id: str | None,
    channel_id: str,
    session_id: str,
    nonce: str,
    attachments: list[JSON] | None = None,
) -> JSON:
    """A slash command interaction (type 2) for `command` as `find_command` returned it."""
    return {
        "type": _INTERACTION_APPLICATION_COMMAND,
        "application_id": command.get("application_id", MIDJOURNEY_BOT_ID),
        "guild_id": guild_id,
        "channel_id": channel_id,
        "session_id": session_id,
        "nonce": nonce,
        "data": {
            "version": command.get("version"),
            "id": command.get("id"),
            "name": command.get("name"),
            "type": command.get("type", _CHAT_INPUT),
            "options": options,
            "application_command": dict(command),
            "attachments": list(attachments) if attachments else [],
        },
    }


def imagine_options(prompt: str) -> list[JSON]:
    """Options of ``/imagine``: the one string option ``prompt``."""
    return [{"type": _OPTION_STRING, "name": "prompt", "value": prompt}]


def shorten_options(prompt: str) -> list[JSON]:
    """Options of ``/shorten``: the one string option ``prompt``."""
    return [{"type": _OPTION_STRING, "name": "prompt", "value": prompt}]


def describe_options(*, link: str | None = None, attachment_index: int = 0) -> list[JSON]:
    """Options of ``/describe``: a ``link`` (string) when given, else the uploaded ``image`` at that index."""
    if link is not None:
        return [{"type": _OPTION_STRING, "name": "link", "value": link}]
    return [{"type": _OPTION_ATTACHMENT, "name": "image", "value": attachment_index}]


def blend_options(image_count: int, aspect: str | None = None) -> list[JSON]:
    """Options of ``/blend``: ``image1``…``imageN`` (attachment indices 0…N-1), then ``dimensions``.

    `aspect` is the result's shape as W:H (Midjourney lists ``2:3``, ``1:1`` and ``3:2``); the option's value
    is the choice as the command index gives it, e.g. ``--ar 2:3``. None leaves it out (square).
    """
    options: list[JSON] = [
        {"type": _OPTION_ATTACHMENT, "name": f"image{i + 1}", "value": i} for i in range(image_count)
    ]
    if aspect:
        options.append({"type": _OPTION_STRING, "name": "dimensions", "value": f"--ar {aspect}"})
    return options


def attachment_ref(index: int, filename: str, uploaded_filename: str) -> JSON:
    """An entry of ``data.attachments`` for a file uploaded through ``POST /channels/{id}/attachments``."""
    return {"id": str(index), "filename": filename, "uploaded_filename": uploaded_filename}


def button_press(
    *,
    application_id: str,
    guild_id: str | None,
    channel_id: str,
    message_id: str,
    message_flags: int,
    session_id: str,
    nonce: str,
    custom_id: str,
    component_type: int = 2,
    values: list[str] | None = None,
) -> JSON:
    """A component interaction (type 3): a button press, or a select menu choice with `values`.

    `message_flags` is the pressed message's own `flags` (64 for an ephemeral message).
    """
    data: JSON = {"component_type": component_type, "custom_id": custom_id}
    if component_type == _SELECT_MENU or values is not None:
        data["values"] = list(values or [])
    return {
        "type": _INTERACTION_COMPONENT,
        "nonce": nonce,
        "guild_id": guild_id,
        "channel_id": channel_id,
        "message_flags": message_flags,
        "message_id": message_id,
        "application_id": application_id,
        "session_id": session_id,
        "data": data,
    }


def modal_submit(
    *,
    application_id: str,
    guild_id: str | None,
    channel_id: str,
    session_id: str,
    nonce: str,
    modal_interaction_id: str,
    modal_custom_id: str,
    inputs: dict[str, str],
) -> JSON:
    """A modal submit (type 5) answering the modal that interaction `modal_interaction_id` opened.

    `inputs` maps each text input's custom_id to its value, one action row each, in the given order.
    """
    rows = [
        {"type": _ACTION_ROW, "components": [{"type": _TEXT_INPUT, "custom_id": key, "value": value}]}
        for key, value in inputs.items()
    ]
    return {
        "type": _INTERACTION_MODAL_SUBMIT,
        "application_id": application_id,
        "guild_id": guild_id,
        "channel_id": channel_id,
        "session_id": session_id,
        "nonce": nonce,
        "data": {"id": modal_interaction_id, "custom_id": modal_custom_id, "components": rows},
    }
