"""The simulator's world: its settings, the accounts, the guild and its channels, messages and files."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .commands import CommandIndex
from .faults import Faults
from .ids import Snowflakes, cdn_signature
from .images import ImageCache, ImageKey
from .messages import Message, member_object, user_object

BOT_JOINED_MS = 1_643_396_691_221  # when the bot joined the guild: any fixed past instant

DEFAULT_TOKEN = "sim-token-not-a-real-secret"
DEFAULT_GUILD_ID = "1121633108689698856"
DEFAULT_CHANNEL_ID = "1121633108689698859"
DEFAULT_USER_ID = "1097074882203303911"
DEFAULT_USERNAME = "sim_user"
FORBIDDEN_CHANNEL_ID = "1121633108689698860"


@dataclass
class SimulatorConfig:
    """Everything a test or a person may want to tune. Mutable at run time through the control methods."""

    token: str = DEFAULT_TOKEN
    user_id: str = DEFAULT_USER_ID
    username: str = DEFAULT_USERNAME
    guild_id: str = DEFAULT_GUILD_ID
    channel_id: str = DEFAULT_CHANNEL_ID
    # A channel that exists but that the account may not read or write: 403, code 50001.
    forbidden_channel_id: str = FORBIDDEN_CHANNEL_ID
    # Wall-clock length of one job in fast mode, from "Waiting to start" to the result.
    job_seconds: float = 45.0
    progress_steps: int = 5
    # Delay from the interaction to INTERACTION_SUCCESS and the bot's first message.
    ack_seconds: float = 0.25
    # How long Discord waits for the bot before INTERACTION_FAILURE (3 s on the real thing).
    interaction_timeout_seconds: float = 3.0
    heartbeat_interval_ms: int = 41_250
    # A session may be resumed this long after its connection dropped.
    resume_window_seconds: float = 180.0
    # Real user-account READY payloads are large (often well past 64 KiB): pad ours to this many bytes.
    ready_min_bytes: int = 80_000
    max_running_jobs: int = 3
    max_queued_jobs: int = 10
    banned_words: tuple[str, ...] = ("forbiddenword",)
    # (requests, seconds): at most that many interactions per account per window; None = no limit.
    interaction_rate_limit: tuple[int, float] | None = None
    # Result message form: the plain `(fast)` or the 2024+ link `[(Open on website for full quality)](<…>)`.
    website_link: bool = False
    # Order of the last two events of a job: delete the progress message first (as observed), or create first.
    delete_before_final: bool = True
    # Today's stricter interaction checks, for tests that want them: a nonce required, and a session_id that is a
    # live gateway session of the same account. Discord checks neither (the default, faithful, is False).
    strict_interactions: bool = False
    # Buttons Midjourney "ships" at run time, under single images: (action, label) -> MJ::JOB::<action>::1::<uuid>::SOLO
    extra_buttons: tuple[tuple[str, str], ...] = ()


@dataclass
class Account:
    """A Discord user account that may use the simulator (one token each)."""

    token: str
    user_id: str
    username: str
    dm_channel_id: str
    mode: str = "fast"  # fast | relax | turbo
    remix: bool = False
    joined_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 86_400_000 * 90)

    @property
    def user(self) -> dict[str, object]:
        """The user object Discord embeds in messages."""
        return user_object(self.user_id, self.username)

    @property
    def member(self) -> dict[str, object]:
        """The partial member object of guild messages."""
        return member_object(self.joined_ms)


@dataclass
class Channel:
    """A text channel (a guild channel, or a DM with the bot when `guild_id` is None)."""

    id: str
    guild_id: str | None
    name: str
    # User ids that may see the channel; None = every account.
    readers: set[str] | None = None
    messages: OrderedDict[str, Message] = field(default_factory=OrderedDict)

    def readable_by(self, user_id: str) -> bool:
        """Whether this user may read (and post interactions in) the channel."""
        return self.readers is None or user_id in self.readers


@dataclass
class StoredFile:
    """A file on the fake CDN: its bytes are rendered (again) on demand from `key` or `loader`."""

    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    key: ImageKey | None = None
    loader: Callable[[], bytes] | None = None


class World:
    """All the simulator's state. Lives on the server's event loop: touch it only from there."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.snowflakes = Snowflakes()
        self.commands = CommandIndex(self.snowflakes)
        self.images = ImageCache()
        self.base_url = "http://127.0.0.1:0"
        self.accounts: dict[str, Account] = {}
        self.channels: dict[str, Channel] = {}
        self.files: OrderedDict[str, StoredFile] = OrderedDict()
        self.uploads: OrderedDict[str, bytes] = OrderedDict()
        self.rest_counts: Counter[str] = Counter()
        self.gateway_counts: Counter[str] = Counter()
        # (job uuid, time.monotonic()) as each final result is written to its user's websocket: the hand-off
        # latency benchmark's start. Results wait in `results_to_stamp` (message id -> uuid, user) until then.
        self.results_sent: deque[tuple[str, float]] = deque(maxlen=100_000)
        self.results_to_stamp: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.interaction_times: dict[str, deque[float]] = {}
        self.faults = Faults()  # nothing armed until a test asks
        self.guild_name = "Simulated Midjourney"
        self.add_account(config.token, config.username, config.user_id)
        self.channels[config.channel_id] = Channel(config.channel_id, config.guild_id, "midjourney")
        self.channels[config.forbidden_channel_id] = Channel(
            config.forbidden_channel_id, config.guild_id, "staff-only", readers=set()
        )

    # -- the hand-off benchmark's clock -------------------------------------------------------------

    def expect_result(self, message_id: str, uuid: str, user_id: str) -> None:
        """A job's final result is about to be posted: stamp it when it is written to its user's websocket."""
        self.results_to_stamp[message_id] = (uuid, user_id)
        while len(self.results_to_stamp) > 10_000:  # results whose user never came back to read them
            self.results_to_stamp.popitem(last=False)

    def stamp_result(self, message_id: str, user_id: str) -> None:
        """A MESSAGE_CREATE is being written to a websocket of `user_id`: record it if it is a job's result."""
        expected = self.results_to_stamp.get(message_id)
        if expected is not None and expected[1] == user_id:
            del self.results_to_stamp[message_id]
            self.results_sent.append((expected[0], time.monotonic()))

    # -- accounts ----------------------------------------------------------------------------------

    def add_account(self, token: str, username: str, user_id: str | None = None) -> Account:
        """Register an account (and its DM channel with the bot)."""
        account = Account(token, user_id or self.snowflakes.next(), username, self.snowflakes.next())
        self.accounts[token] = account
        self.channels[account.dm_channel_id] = Channel(account.dm_channel_id, None, "", readers={account.user_id})
        return account

    def account_by_id(self, user_id: str) -> Account | None:
        """The account of this user id, if the user is one of ours."""
        return next((a for a in self.accounts.values() if a.user_id == user_id), None)

    @property
    def main_account(self) -> Account:
        """The account configured by `SimulatorConfig.token`."""
        return self.accounts[self.config.token]

    # -- messages ----------------------------------------------------------------------------------

    def message(self, channel_id: str, message_id: str) -> Message | None:
        """A message of a channel, deleted or not."""
        channel = self.channels.get(channel_id)
        return None if channel is None else channel.messages.get(message_id)

    def find_message(self, message_id: str) -> Message | None:
        """A message of any channel."""
        for channel in self.channels.values():
            if message_id in channel.messages:
                return channel.messages[message_id]
        return None

    def store(self, message: Message) -> None:
        """Keep a message in its channel's history."""
        self.channels[message.channel_id].messages[message.id] = message

    def render(self, message: Message, *, gateway: bool, created: bool = False) -> dict[str, object]:
        """A message's payload, with its referenced message resolved as Discord does."""
        referenced = None
        if message.reference_id is not None:
            parent = self.message(message.channel_id, message.reference_id)
            if parent is not None and not parent.deleted:
                referenced = parent.payload()
        member = None
        if gateway:
            author = self.account_by_id(str(message.author.get("id")))
            member = author.member if author else member_object(BOT_JOINED_MS)
        return message.payload(referenced=referenced, gateway=gateway, member=member, created=created)

    # -- files -------------------------------------------------------------------------------------

    def add_file(self, channel_id: str, stored: StoredFile) -> dict[str, object]:
        """Put a file on the fake Discord CDN and return its attachment object."""
        attachment_id = self.snowflakes.next()
        self.files[attachment_id] = stored
        while len(self.files) > 20_000:  # a long human session must not grow without bound
            self.files.popitem(last=False)
        path = f"attachments/{channel_id}/{attachment_id}/{stored.filename}"
        signature = cdn_signature()
        body: dict[str, object] = {
            "id": attachment_id,
            "filename": stored.filename,
            "size": stored.size,
            "url": f"{self.base_url}/{path}{signature}",
            "proxy_url": f"{self.base_url}/media/{path}{signature}",
        }
        if stored.width is not None:
            body["width"] = stored.width
            body["height"] = stored.height
        body["content_type"] = stored.content_type
        body["placeholder_version"] = 1
        return body

    def image_attachment(self, channel_id: str, key: ImageKey, filename: str) -> dict[str, object]:
        """Render an image, put it on the CDN and return its attachment object."""
        data, content_type, width, height = self.images.get(key)
        return self.add_file(channel_id, StoredFile(filename, content_type, len(data), width, height, key=key))

    def file_bytes(self, stored: StoredFile) -> bytes:
        """The bytes of a stored file."""
        if stored.key is not None:
            return self.images.get(stored.key)[0]
        assert stored.loader is not None
        return stored.loader()
