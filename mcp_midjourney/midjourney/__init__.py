"""Pure knowledge of the Midjourney bot: its content grammar, buttons, embeds and interaction bodies.

No I/O, no asyncio: every function here is a pure function of a Discord payload (dicts as they come
from JSON) and never raises on malformed input. See docs/protocol.md for the wire facts.
"""

from mcp_midjourney.midjourney.buttons import (
    ButtonAction,
    button_action,
    button_name,
    button_used,
    find_button,
    parse_buttons,
    press_cost,
)
from mcp_midjourney.midjourney.cdn import grid_image_urls, video_url, video_urls
from mcp_midjourney.midjourney.commands import (
    CommandNotFound,
    attachment_ref,
    blend_options,
    button_press,
    describe_options,
    find_command,
    imagine_options,
    modal_submit,
    shorten_options,
    slash_command,
)
from mcp_midjourney.midjourney.embeds import EmbedVerdict, account_advice, classify_embeds
from mcp_midjourney.midjourney.inpaint import inpaint_payload, inpaint_submit_url
from mcp_midjourney.midjourney.parse import (
    Content,
    is_progress_attachment,
    message_job_uuid,
    normalise_prompt,
    parse_content,
    plain_failure,
)

__all__ = [
    "ButtonAction",
    "CommandNotFound",
    "Content",
    "EmbedVerdict",
    "account_advice",
    "attachment_ref",
    "blend_options",
    "button_action",
    "button_name",
    "button_press",
    "button_used",
    "classify_embeds",
    "describe_options",
    "find_button",
    "find_command",
    "grid_image_urls",
    "imagine_options",
    "inpaint_payload",
    "inpaint_submit_url",
    "is_progress_attachment",
    "message_job_uuid",
    "modal_submit",
    "normalise_prompt",
    "parse_buttons",
    "parse_content",
    "plain_failure",
    "press_cost",
    "shorten_options",
    "slash_command",
    "video_url",
    "video_urls",
]
