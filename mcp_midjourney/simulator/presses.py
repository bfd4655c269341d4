"""What the bot does when a button under one of its messages is pressed, and when a modal comes back.

Grid buttons (U, V, 🔄), single-image buttons (upscale, vary, zoom, pan, animate, ❤️), the progress
message's Cancel, /describe's picks and /settings' toggles. With Remix mode on, V, 🔄 and pans first open
a modal (INTERACTION_MODAL_CREATE); the job starts when its type-5 submit arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from . import buttons
from .chat import Interaction
from .ids import job_uuid
from .images import render_animation
from .jobs import Job
from .prompts import mode_override, video_count, video_echo
from .state import StoredFile

if TYPE_CHECKING:
    from .bot import MidjourneyBot

JSON = dict[str, Any]

_PAN_WORDS = {"left": "Left", "right": "Right", "up": "Up", "down": "Down"}
_UPSCALE_WORDS = {"upsample_v5_2x": "2x", "upsample_v5_4x": "4x"}


@dataclass(frozen=True)
class Modal:
    """A modal with one paragraph input, as Midjourney opens them."""

    custom_id: str
    title: str
    input_id: str
    label: str
    value: str

    def inputs(self) -> list[JSON]:
        """Its components: one text input, pre-filled."""
        return [
            {
                "type": 4,
                "custom_id": self.input_id,
                "style": 2,
                "label": self.label,
                "value": self.value,
                "required": True,
                "min_length": 1,
                "max_length": 4000,
            }
        ]


@dataclass
class PendingModal:
    """A modal the bot opened: what its submit must name, and what to do with the text typed in."""

    custom_id: str
    opener: Interaction
    complete: Callable[[Interaction, str], None]


class Presses:
    """Button presses and modal submits, for one bot."""

    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        self.world = bot.world
        self.chat = bot.chat
        self.jobs = bot.jobs
        self.modals: OrderedDict[str, PendingModal] = OrderedDict()
        self.regions: OrderedDict[str, tuple[Interaction, Job]] = OrderedDict()  # iframe custom_id -> the press

    def press(self, it: Interaction) -> None:
        """Act on a component interaction; an unknown or stale button gets no answer at all."""
        press = buttons.parse(str(it.data.get("custom_id", "")))
        if press is None:
            return
        if press.action in ("picreader", "picread_retry"):
            self._picreader(it, press.extra)
        elif press.action == "settings":
            self._settings(it, press.extra)
        elif press.action in ("acknowledge", "resubmit"):
            self._moderation(it, press.action, press.extra)
        elif press.action == "cancel":
            self.jobs.cancel(press.uuid)
            self.chat.succeed(it)
        elif (parent := self.jobs.jobs.get(press.uuid)) is not None:
            self._job_button(it, parent, press)

    def _job_button(self, it: Interaction, parent: Job, press: buttons.Press) -> None:
        action = press.action
        remix = it.account is not None and it.account.remix
        if action == "upsample":
            self._upscale_now(it, parent, press.index)
        elif action in ("variation", "low_variation", "high_variation"):
            strong = action != "low_variation"
            word = "Strong" if strong else "Subtle"
            modal = Modal(
                f"MJ::RemixModal::{parent.uuid}::{press.index}::{int(strong)}",
                "Remix Prompt",
                "MJ::RemixModal::new_prompt",
                f"New prompt for image #{press.index}",
                parent.echo,
            )
            self._remix_or_derive(
                it, parent, remix, modal, f"Remix ({word}) by", "variation", f"Variations ({word}) by"
            )
        elif action == "reroll":
            modal = Modal(
                f"MJ::ImagineModal::{it.message_id}",
                "Imagine This!",
                "MJ::ImagineModal::new_prompt",
                "Prompt",
                parent.echo,
            )
            self._remix_or_derive(it, parent, remix, modal, "", "reroll", "")
        elif action.startswith("pan_"):
            side = action.removeprefix("pan_")
            word = f"Pan {_PAN_WORDS.get(side, 'Left')}"
            modal = Modal(
                f"MJ::PanModal::{side}::{parent.uuid}::{press.index}",
                word,
                "MJ::PanModal::prompt",
                "Prompt",
                parent.echo,
            )
            self._remix_or_derive(it, parent, remix, modal, f"{word} by", "pan", f"{word} by")
        elif action.startswith("upsample_"):
            word = _UPSCALE_WORDS.get(action) or ("Creative" if action.endswith("creative") else "Subtle")
            self._derive(
                it, parent, "upscale", f"Upscaled ({word}) by", result="single", progress="Upscaling by", scale=2
            )
        elif action == "outpaint":
            self._derive(it, parent, "zoom", "Zoom Out by")
        elif action == "custom_zoom":
            modal = Modal(
                f"MJ::OutpaintCustomZoomModal::{parent.uuid}",
                "Zoom Out",
                "MJ::OutpaintCustomZoomModal::prompt",
                "Zoom out prompt",
                f"{parent.echo} --zoom 2",
            )
            self._open(it, modal, partial(self._remixed, "Zoom Out by"))
        elif action in ("animate_high", "animate_low", "animate_high_extend", "animate_low_extend"):
            self._animate(it, parent, press, remix)
        elif action == "video_virtual_upscale":
            self._pick_video(it, parent, press.index)
        elif action == "inpaint":
            # Vary (Region) draws a mask in an iframe served by Midjourney: not simulated past the opening.
            it.responded = True
            self.regions[f"MJ::iframe::{parent.uuid}"] = (it, parent)
            while len(self.regions) > 200:
                self.regions.popitem(last=False)
            self.chat.interaction_event(
                it,
                "INTERACTION_IFRAME_MODAL_CREATE",
                channel_id=it.channel.id,
                custom_id=f"MJ::iframe::{parent.uuid}",
                title="Vary Region",
                iframe_path=f"/inpaint/{parent.uuid}",
                modal_size=3,
            )
        elif (label := dict(self.world.config.extra_buttons).get(action)) is not None:
            # A button shipped at run time: it makes a new image from this one, like the others.
            self._derive(it, parent, action, f"{label} by", result="single")
        elif action == "bookmark":
            where = f"{it.channel.guild_id or '@me'}/{it.channel.id}/{it.message_id}"
            link = f"[this job](https://discord.com/channels/{where})"
            self.bot.say(it, f"You have successfully rated {link} with the heart-eyes emoji")

    def submit_region(self, custom_id: str, prompt: str) -> bool:
        """The region editor sent its mask: start the Vary (Region) job, as a reply to the pressed message."""
        pending = self.regions.pop(custom_id, None)
        if pending is None:
            return False
        it, parent = pending
        echo = " ".join(prompt.split()) or parent.echo
        self._derive(it, parent, "variation", "Variations (Region) by", echo=echo)
        return True

    def _remix_or_derive(
        self, it: Interaction, parent: Job, remix: bool, modal: Modal, remix_label: str, kind: str, label: str
    ) -> None:
        if remix:
            self._open(it, modal, partial(self._remixed, remix_label))
        else:
            self._derive(it, parent, kind, label)

    def _derive(
        self,
        it: Interaction,
        parent: Job,
        kind: str,
        label: str,
        *,
        result: str = "grid",
        progress: str | None = None,
        scale: int = 1,
        echo: str | None = None,
        reference: str | None = None,
    ) -> Job:
        """A new job made from a button of `parent`'s message, as a reply to that message."""
        mode = mode_override(parent.echo) or (it.account.mode if it.account else "fast")
        seed, index = (parent.seed or parent.uuid, parent.index or 1) if result == "single" else ("", 0)
        job = Job(
            job_uuid(),
            kind,
            echo or parent.echo,
            it.user,
            it.channel,
            it,
            label=label,
            progress_label=progress,
            result=result,
            seed=seed,
            index=index,
            scale=scale,
            family=parent.family,
            reference_id=reference or it.message_id,
            mode=mode,
        )
        if result == "video":
            job.videos = video_count(job.echo)
        self.jobs.submit(job)
        return job

    # -- video (protocol.md §7) -------------------------------------------------------------------

    def _animate(self, it: Interaction, parent: Job, press: buttons.Press, remix: bool) -> None:
        """Animate an image, or Extend a picked video: a new video job (after the AnimateModal, with Remix on)."""
        extend = press.action.endswith("_extend")
        motion = "high" if "high" in press.action else "low"

        def start(source: Interaction, prompt: str) -> None:
            echo = prompt if extend else video_echo(prompt, motion)
            kind = "extend" if extend else "animate"
            self._derive(source, parent, kind, "", result="video", echo=echo, reference=it.message_id)

        if remix:
            modal = Modal(
                f"MJ::AnimateModal::{parent.uuid}::{press.index}::{motion}::{int(extend)}",
                "Animate" if not extend else "Extend",
                "MJ::AnimateModal::prompt",
                "Prompt",
                parent.echo,
            )
            self._open(it, modal, start)
        else:
            start(it, parent.echo)

    def _pick_video(self, it: Interaction, parent: Job, index: int) -> None:
        """U1-U4 on a video grid (`video_virtual_upscale`): the one video at once, with Extend buttons."""
        grid = self.world.message(it.channel.id, it.message_id or "")
        self.chat.succeed(it)
        if index in parent.used_upscales or grid is None or not 1 <= index <= parent.videos:
            return  # pressed before: Midjourney answers nothing new
        parent.used_upscales.add(index)
        clip = Job(job_uuid(), "upscale", parent.echo, it.user, it.channel, it, result="clip", seed=parent.uuid)
        clip.index, clip.videos, clip.reference_id, clip.state = index, 1, grid.id, "done"
        self.jobs.remember(clip)
        reply = self.chat.compose(
            it.channel, f"**{parent.echo}** - Image #{index} <@{it.user_id}>", interaction=it, reference_id=grid.id
        )
        data = render_animation(parent.echo, parent.uuid, index)
        stored = StoredFile(clip.filename("webp"), "image/webp", len(data), 512, 512, loader=lambda: data)
        reply.attachments = [self.world.add_file(it.channel.id, stored)]
        reply.components = buttons.clip_rows(clip.uuid)
        clip.result_message_id = self.chat.post(reply).id
        grid.components = buttons.video_rows(parent.uuid, parent.videos, frozenset(parent.used_upscales))
        self.chat.edit(grid)

    def _moderation(self, it: Interaction, action: str, token: str) -> None:
        """Acknowledge (the hold is over) or Resubmit (the held prompt runs again) under "Pending mod message"."""
        prompt = self.bot.held_prompts.pop(token, None)
        if prompt is None:
            return  # an unknown or already answered moderation message: no answer
        if action == "resubmit":
            self.bot.imagine(it, prompt)
        else:
            self.chat.succeed(it)

    def _upscale_now(self, it: Interaction, parent: Job, index: int) -> None:
        """U1-U4: no job to wait for, the single image comes at once as a reply to the grid."""
        grid = self.world.message(it.channel.id, it.message_id or "")
        self.chat.succeed(it)
        if index in parent.used_upscales or grid is None:
            return  # pressed before: Midjourney answers nothing new
        parent.used_upscales.add(index)
        single = Job(job_uuid(), "upscale", parent.echo, it.user, it.channel, it, result="single", seed=parent.uuid)
        single.index, single.family, single.reference_id, single.state = index, parent.family, grid.id, "done"
        self.jobs.remember(single)
        content = f"**{parent.echo}** - Image #{index} <@{it.user_id}>"
        reply = self.chat.compose(it.channel, content, interaction=it, reference_id=grid.id)
        reply.attachments = [self.world.image_attachment(it.channel.id, single.image_key(), single.filename())]
        reply.components = buttons.single_rows(single.uuid, parent.family, extra=self.world.config.extra_buttons)
        single.result_message_id = self.chat.post(reply).id
        # Midjourney marks a used U button blue on the grid.
        grid.components = buttons.grid_rows(parent.uuid, frozenset(parent.used_upscales))
        self.chat.edit(grid)

    # -- modals ------------------------------------------------------------------------------------

    def _open(self, it: Interaction, modal: Modal, complete: Callable[[Interaction, str], None]) -> None:
        self.modals[it.id] = PendingModal(modal.custom_id, it, complete)
        while len(self.modals) > 1_000:
            self.modals.popitem(last=False)
        self.chat.open_modal(it, modal.custom_id, modal.title, modal.inputs())

    def pending_modal(self, opener_id: str, custom_id: str, user_id: str) -> PendingModal | None:
        """The modal a submit names, if this user has it open."""
        modal = self.modals.get(opener_id)
        if modal is None or modal.custom_id != custom_id or modal.opener.user_id != user_id:
            return None
        return modal

    def submit(self, it: Interaction) -> None:
        """A modal came back: run what it was opened for with the text typed in."""
        modal = self.modals.pop(str(it.data.get("id")), None)
        if modal is None:
            return
        values = [c.get("value", "") for r in it.data.get("components") or [] for c in r.get("components") or []]
        it.opener = modal.opener
        modal.complete(it, str(values[0]) if values else "")

    def _remixed(self, label: str, it: Interaction, prompt: str) -> None:
        reference = it.opener.message_id if it.opener else None
        kind = "zoom" if label.startswith("Zoom") else "remix"
        self.bot.imagine(it, prompt, kind=kind, label=label, reference_id=reference)

    # -- describe and settings buttons ------------------------------------------------------------

    def _picreader(self, it: Interaction, which: str) -> None:
        prompts = self.bot.describes.get(it.message_id or "")
        if prompts is None:
            return
        if which == "":  # 🔄: describe again
            self.bot.say(it, "", ephemeral=False, embeds=[{"type": "rich", "description": "\n\n".join(prompts)}])
            return
        if which == "all":
            for position, prompt in enumerate(prompts):
                self.bot.imagine(it, prompt, answers=position == 0)
            return
        # 1️⃣-4️⃣ open a form with the prompt to edit first (the ids are our guess: no capture shows them).
        modal = Modal(
            f"MJ::Picreader::Modal::{which}",
            "Imagine This!",
            "MJ::Picreader::Modal::PromptField",
            "Prompt",
            prompts[int(which) - 1],
        )

        def imagine(submit: Interaction, text: str) -> None:
            self.bot.imagine(submit, text)

        self._open(it, modal, imagine)

    def _settings(self, it: Interaction, name: str) -> None:
        account = it.account
        if account is None:
            return
        if name == "RemixMode":
            account.remix = not account.remix
        elif name in ("TurboMode", "FastMode", "RelaxMode"):
            account.mode = name.removesuffix("Mode").lower()
        elif name == "ResetSettings":
            account.mode, account.remix = "fast", False
        self.chat.succeed(it)
        message = self.world.message(it.channel.id, it.message_id or "")
        if message is not None:
            message.components = buttons.settings_rows(account.mode, account.remix)
            self.chat.edit(message)
