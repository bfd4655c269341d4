"""How things get said in a channel: messages created, edited and deleted, and interaction events.

Everything visible goes through here so that the message store and the gateway never disagree: a
message is stored, then dispatched to every account that can read its channel (or, when ephemeral, to
its one reader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_midjourney.models import MIDJOURNEY_BOT_ID

from .gateway import Gateway
from .ids import now_ms
from .messages import BOT_USER, EPHEMERAL, REPLY, Message
from .state import Account, Channel, World

JSON = dict[str, Any]

INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_MODAL_SUBMIT = 5


@dataclass
class Interaction:
    """One interaction as Discord recorded it: who, where, and what the bot's replies must point back to."""

    id: str
    nonce: str | None  # None when the client sent none (Discord accepts that): its echoes then carry none
    type: int
    user: JSON
    channel: Channel
    account: Account | None = None  # None for other users' interactions (they get no INTERACTION_* events)
    name: str = ""  # the command name, for slash commands
    message_id: str | None = None  # the message whose component was used
    opener: Interaction | None = None  # for a modal submit: the press that opened the modal
    data: JSON = field(default_factory=dict)
    responded: bool = False

    @property
    def user_id(self) -> str:
        """The id of the user who interacted."""
        return str(self.user["id"])

    def legacy(self) -> JSON | None:
        """The deprecated `interaction` field of a response message (slash commands only)."""
        if self.type != INTERACTION_COMMAND:
            return None
        return {"id": self.id, "type": self.type, "name": self.name, "user": self.user}

    def metadata(self, *, original_response_id: str | None = None) -> JSON:
        """`interaction_metadata` of a response (or, with `original_response_id`, of a follow-up)."""
        body: JSON = {
            "id": self.id,
            "type": self.type,
            "user": self.user,
            "authorizing_integration_owners": {"0": self.channel.guild_id or "0"}
            if self.channel.guild_id
            else {"1": self.user_id},
        }
        if self.type == INTERACTION_COMMAND:
            body["name"] = self.name
            body["command_type"] = 1
        if self.message_id is not None:
            body["interacted_message_id"] = self.message_id
        if self.opener is not None:
            body["triggering_interaction_metadata"] = self.opener.metadata()
        if original_response_id is not None:
            body["original_response_message_id"] = original_response_id
        return body


class Chat:
    """Posts, edits and deletes the bot's messages and emits interaction events."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self.world = world
        self.gateway = gateway

    def readers(self, message: Message) -> list[str]:
        """User ids of the accounts that receive events about this message."""
        if message.visible_to is not None:
            return [message.visible_to]
        channel = self.world.channels[message.channel_id]
        return [a.user_id for a in self.world.accounts.values() if channel.readable_by(a.user_id)]

    def compose(
        self,
        channel: Channel,
        content: str = "",
        *,
        author: JSON | None = None,
        interaction: Interaction | None = None,
        nonce: bool = False,
        follow_up_of: str | None = None,
        reference_id: str | None = None,
        ephemeral: bool = False,
        mention: JSON | None = None,
        **fields: Any,
    ) -> Message:
        """A new message (not yet posted); `nonce` copies the interaction's nonce onto it."""
        # Midjourney mentions the user its message is about (`<@uid>` in the content).
        mentioned = [u for u in (interaction.user if interaction else None, mention) if u is not None]
        message = Message(
            id=self.world.snowflakes.next(),
            mentions=[u for u in mentioned if f"<@{u['id']}>" in content][:1],
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author or BOT_USER,
            content=content,
            **fields,
        )
        if interaction is not None:
            message.from_interaction = True
            message.interaction = interaction.legacy()
            message.interaction_metadata = interaction.metadata(original_response_id=follow_up_of)
            if nonce:
                message.nonce = interaction.nonce
        if reference_id is not None:
            message.reference_id = reference_id
            message.type = REPLY
        if ephemeral:
            message.flags |= EPHEMERAL
            message.visible_to = interaction.user_id if interaction is not None else None
        return message

    def post(self, message: Message) -> Message:
        """Store a message and send MESSAGE_CREATE."""
        self.world.store(message)
        payload = self.world.render(message, gateway=True, created=True)
        self.gateway.dispatch("MESSAGE_CREATE", payload, self.readers(message))
        return message

    def edit(self, message: Message) -> None:
        """Mark a message edited and send MESSAGE_UPDATE (the whole message, as Discord does now)."""
        message.edited_ms = now_ms()
        self.gateway.dispatch("MESSAGE_UPDATE", self.world.render(message, gateway=True), self.readers(message))

    def delete(self, message: Message) -> None:
        """Delete a message and send MESSAGE_DELETE."""
        message.deleted = True
        data: JSON = {"id": message.id, "channel_id": message.channel_id}
        if message.guild_id is not None:
            data["guild_id"] = message.guild_id
        self.gateway.dispatch("MESSAGE_DELETE", data, self.readers(message))

    def interaction_event(self, interaction: Interaction, event: str, **extra: Any) -> None:
        """INTERACTION_CREATE / _SUCCESS / _FAILURE / _MODAL_CREATE, to the interacting account only."""
        if interaction.account is None:
            return
        data: JSON = {"id": interaction.id, **extra}
        if interaction.nonce is not None:
            data["nonce"] = interaction.nonce
        self.gateway.dispatch(event, data, [interaction.account.user_id])

    def succeed(self, interaction: Interaction) -> None:
        """Acknowledge an interaction once (the bot answered it in time)."""
        if not interaction.responded:
            interaction.responded = True
            self.interaction_event(interaction, "INTERACTION_SUCCESS")

    def fail(self, interaction: Interaction, reason_code: int = 2) -> None:
        """The bot never answered: Discord gives up on the interaction."""
        if not interaction.responded:
            interaction.responded = True
            self.interaction_event(interaction, "INTERACTION_FAILURE", reason_code=reason_code)

    def open_modal(self, interaction: Interaction, custom_id: str, title: str, inputs: list[JSON]) -> None:
        """Answer with a modal (INTERACTION_MODAL_CREATE) instead of a message."""
        interaction.responded = True
        self.interaction_event(
            interaction,
            "INTERACTION_MODAL_CREATE",
            channel_id=interaction.channel.id,
            custom_id=custom_id,
            title=title,
            components=[{"type": 1, "components": [i]} for i in inputs],
            application={"id": MIDJOURNEY_BOT_ID, "name": "Midjourney Bot", "icon": BOT_USER["avatar"]},
        )
