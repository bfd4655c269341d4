"""The Midjourney bot: how it answers slash commands, button presses and modal submits.

Every answer comes after `ack_seconds`, like a real bot's round trip; an interaction the bot does not
answer ends, `interaction_timeout_seconds` later, in INTERACTION_FAILURE (what Discord does).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import partial
from typing import Any

import anyio

from . import buttons
from .chat import INTERACTION_COMMAND, INTERACTION_COMPONENT, Chat, Interaction
from .ids import job_uuid, short_code
from .jobs import ERROR_COLOUR, Job, Jobs, Spawn
from .messages import Message, embed
from .picreader import describe_prompts, stored_upload
from .presses import Presses
from .prompts import check, echo, is_video, mode_override, model_family, video_count
from .state import World

JSON = dict[str, Any]

logger = logging.getLogger("mcp_midjourney.simulator")

_MODE_REPLIES = {
    "relax": "Done! Your jobs now do not consume fast-hours, but might take a little longer. "
    "You can always switch back with /fast",
    "fast": "Done! Your jobs will now use fast mode. You can switch to relax mode with /relax",
    "turbo": "Done! Your jobs will now use turbo mode: faster, and twice the fast-hours.",
}


class MidjourneyBot:
    """Routes validated interactions to the bot's behaviour."""

    def __init__(self, world: World, chat: Chat, jobs: Jobs, spawn: Spawn) -> None:
        self.world = world
        self.chat = chat
        self.jobs = jobs
        self._spawn = spawn
        self.describes: OrderedDict[str, list[str]] = OrderedDict()
        self.held_prompts: OrderedDict[str, str] = OrderedDict()  # a moderation message's token -> its prompt
        self.presses = Presses(self)

    # -- entry points ------------------------------------------------------------------------------

    def handle(self, interaction: Interaction) -> None:
        """Answer an interaction (already validated by Discord's side) after the bot's round trip."""
        self._spawn(partial(self._respond, interaction))

    def fail_later(self, interaction: Interaction) -> None:
        """Nobody will answer: INTERACTION_FAILURE once Discord's timeout has passed."""
        self._spawn(partial(self._time_out, interaction, self.world.config.interaction_timeout_seconds))

    async def _respond(self, interaction: Interaction) -> None:
        config = self.world.config
        # The bot's round trip, never longer than a quarter of a (very short, test) job.
        await anyio.sleep(min(config.ack_seconds, config.job_seconds / 4))
        try:
            if interaction.type == INTERACTION_COMMAND:
                self._command(interaction)
            elif interaction.type == INTERACTION_COMPONENT:
                self.presses.press(interaction)
            else:
                self.presses.submit(interaction)
        except Exception:  # a bot bug looks, from outside, like a bot that never answers
            logger.exception("simulated bot failed on interaction %s", interaction.id)
        if not interaction.responded:
            await self._time_out(interaction, config.interaction_timeout_seconds - config.ack_seconds)

    async def _time_out(self, interaction: Interaction, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
        self.chat.fail(interaction)

    # -- slash commands ----------------------------------------------------------------------------

    def _command(self, it: Interaction) -> None:
        options: JSON = {
            str(o.get("name")): o.get("value") for o in it.data.get("options") or [] if isinstance(o, dict)
        }
        account = it.account
        assert account is not None
        if it.name == "imagine":
            self.imagine(it, str(options.get("prompt") or ""))
        elif it.name == "blend":
            self._blend(it, options)
        elif it.name == "describe":
            self._describe(it, options)
        elif it.name == "shorten":
            self._shorten(it, str(options.get("prompt") or ""))
        elif it.name in _MODE_REPLIES:
            account.mode = it.name
            self.say(it, _MODE_REPLIES[it.name])
        elif it.name == "prefer" and "remix" in options:
            account.remix = not account.remix
            state = "on" if account.remix else "off"
            self.say(it, f"Remix mode turned {state}! You can toggle it by running `/prefer remix` again.")
        elif it.name == "settings":
            rows = buttons.settings_rows(account.mode, account.remix)
            self.say(it, "Adjust your settings here. Current suffix: `  --v 7`", components=rows)
        elif it.name == "info":
            self._info(it)

    def say(self, it: Interaction, content: str, *, ephemeral: bool = True, **fields: Any) -> Message:
        """Answer an interaction with a message (ephemeral unless told otherwise), carrying its nonce."""
        message = self.chat.compose(it.channel, content, interaction=it, nonce=True, ephemeral=ephemeral, **fields)
        self.chat.succeed(it)
        return self.chat.post(message)

    def _refuse(self, it: Interaction, title: str, description: str, footer: str) -> None:
        self.jobs.reply_embed(it, embed(title, description, color=ERROR_COLOUR, footer=footer))

    def imagine(
        self,
        it: Interaction,
        prompt: str,
        *,
        kind: str = "imagine",
        label: str = "",
        reference_id: str | None = None,
        answers: bool = True,
    ) -> Job | None:
        """Start a grid job from a prompt, or answer with the error embed Midjourney would give."""
        faults = self.world.faults
        answer = faults.take_answer(prompt) if it.account is not None else None
        if answer is not None and not answer.after_start and answer.title.casefold() != "job queued":
            faults.note("answer", answer.title)
            rows = None
            if answer.title.casefold() == "pending mod message":  # 2026: with Acknowledge / Resubmit buttons
                token = short_code().lower()
                self.held_prompts[token] = prompt
                while len(self.held_prompts) > 200:
                    self.held_prompts.popitem(last=False)
                rows = buttons.moderation_rows(token)
            self.jobs.reply_embed(
                it,
                embed(answer.title, answer.description, color=answer.color, footer=f"/imagine {prompt}"),
                components=rows,
            )
            return None
        problem = check(prompt, self.world.config.banned_words)
        if problem is not None:
            self._refuse(it, problem.title, problem.description, f"/imagine {prompt}")
            return None
        mode = mode_override(prompt) or (it.account.mode if it.account else "fast")
        job = Job(
            job_uuid(),
            kind,
            echo(prompt),
            it.user,
            it.channel,
            it,
            label=label,
            family=model_family(prompt),
            reference_id=reference_id,
            mode=mode,
            answers_interaction=answers,
        )
        if is_video(prompt):
            job.kind, job.result, job.videos = "video" if kind == "imagine" else kind, "video", video_count(prompt)
        if answer is not None and not answer.after_start:  # "Job queued", on demand
            notice = embed(answer.title, answer.description, color=answer.color, footer=f"/imagine {job.echo}")
            self.jobs.queue_then_run(job, notice, delay=self.world.config.job_seconds / 2)
            return job
        job.refusal = answer
        self.jobs.submit(job)
        if faults.mirror_prompts and it.account is not None:
            self.jobs.shadow(job)
        return job

    def _blend(self, it: Interaction, options: JSON) -> None:
        images = [options[f"image{i}"] for i in range(1, 6) if f"image{i}" in options]
        if len(images) < 2:
            self._refuse(it, "Invalid request", "You need at least two images to blend.", "/blend")
            return
        links = " ".join(f"<https://s.mj.run/{short_code()}>" for _ in images)
        dimensions = str(options.get("dimensions") or "")
        prompt = f"{links} {dimensions} --v 7".replace("  ", " ")
        account_mode = it.account.mode if it.account else "fast"
        self.jobs.submit(Job(job_uuid(), "blend", prompt, it.user, it.channel, it, mode=account_mode))

    def _describe(self, it: Interaction, options: JSON) -> None:
        link = options.get("link")
        if "image" not in options and not link:
            self._refuse(it, "Invalid request", "Please provide an image or a link to describe.", "/describe")
            return
        if link and not str(link).startswith(("http://", "https://")):
            self._refuse(it, "Invalid link", "The link you provided is not a valid image URL.", "/describe")
            return
        picture = stored_upload(self.world, it) if "image" in options else None
        if "image" in options and picture is None:
            self._refuse(it, "Invalid request", "The image could not be read.", "/describe")
            return
        self._spawn(partial(self._describe_run, it, picture, str(link or "")))

    async def _describe_run(self, it: Interaction, picture: JSON | None, link: str) -> None:
        image = {"url": picture["url"], "proxy_url": picture["proxy_url"]} if picture else {"url": link}
        if picture:
            image.update(width=picture["width"], height=picture["height"])
        message = self.say(it, "", ephemeral=False, embeds=[{"type": "rich", "image": image, "color": 0}])
        await anyio.sleep(self.world.config.job_seconds / 3)
        prompts = describe_prompts(self.world, picture, link)
        listed = "\n\n".join(f"{emoji} {text}" for emoji, text in zip(buttons.PICREADER_EMOJI, prompts, strict=True))
        message.embeds[0]["description"] = listed
        message.components = buttons.describe_rows()
        self.describes[message.id] = prompts
        while len(self.describes) > 500:
            self.describes.popitem(last=False)
        self.chat.edit(message)

    def _shorten(self, it: Interaction, prompt: str) -> None:
        words = [w.strip(",.") for w in prompt.split() if not w.startswith("--") and len(w) > 3]
        options = [" ".join(words[: max(1, len(words) - n)]) or prompt for n in range(5)]
        listed = "\n".join(f"{n}️⃣ {text}" for n, text in enumerate(options, 1))
        body = {
            "type": "rich",
            "description": f"**Important tokens**\n{', '.join(words[:8])}\n\n**Shortened prompts**\n{listed}",
            "color": 0,
        }
        self.say(it, "", ephemeral=False, embeds=[body])

    def _info(self, it: Interaction) -> None:
        account = it.account
        assert account is not None
        running = [j.uuid for j in self.jobs.jobs.values() if j.user_id == account.user_id and j.state == "running"]
        queued = len(self.jobs.queues.get(account.user_id, ()))
        lines = [
            f"**User ID**: {account.user_id}",
            "**Subscription**: Standard (Active monthly)",
            f"**Job Mode**: {account.mode.title()}",
            "**Visibility Mode**: Public",
            "**Fast Time Remaining**: 12.34/15.0 hours (82.27%)",
            f"**Queued Jobs ({account.mode})**: {queued}",
            f"**Running Jobs**: {', '.join(running) if running else 'None'}",
        ]
        self.say(it, "", embeds=[embed(f"Your info - {account.username}", "\n".join(lines), color=0)])
