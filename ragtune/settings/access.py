"""Settings of access control: API keys (auth) and rate limits; part of the tree in `ragtune.settings`."""

from __future__ import annotations

import hashlib
import re

from pydantic import Field, field_serializer, field_validator, model_validator

from ragtune.settings.base import _Section

KEY_ADVICE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
MIN_KEY_CHARS = 24
# Strings that mark a key copied from an example rather than generated (compared without case or separators).
PLACEHOLDER_WORDS = (
    "changeme",
    "yourkey",
    "yourapikey",
    "replaceme",
    "placeholder",
    "example",
    "test",
    "dummy",
    "sample",
    "xxxx",
)


def key_problem(key: str) -> str | None:
    """Why `key` is not fit to guard an API (None when it is). The message never repeats the key."""
    if len(key) < MIN_KEY_CHARS:
        return f"is too short ({len(key)} characters; at least {MIN_KEY_CHARS})"
    folded = re.sub(r"[\s_.\-]", "", key.lower())
    word = next((w for w in PLACEHOLDER_WORDS if w in folded), None)
    if word:
        return f"looks like a placeholder (it contains {word!r})"
    if len(set(key)) < 8:
        return "repeats too few characters to be random"
    return None


class ApiKey(_Section):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.@-]+$",
        description="Who holds the key: shown in logs, rate-limit counters and messages (never the key itself).",
    )
    key: str | None = Field(
        None,
        repr=False,
        description="The key (at least 24 random characters). Kept in memory only as its SHA-256 once loaded.",
    )
    key_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The key's SHA-256 (hex) instead of the key, so the settings file holds no secret: "
        'python -c "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())" KEY',
    )

    @model_validator(mode="after")
    def _hash_the_key(self) -> ApiKey:
        if self.key is not None and self.key_sha256 is not None:
            raise ValueError(f"key {self.name!r}: give key or key_sha256, not both")
        if self.key is not None:
            problem = key_problem(self.key)
            if problem:
                raise ValueError(f"key {self.name!r} {problem}; {KEY_ADVICE}")
            self.key_sha256, self.key = hashlib.sha256(self.key.encode()).hexdigest(), None
        elif self.key_sha256 is None:
            raise ValueError(f"key {self.name!r} needs key (or key_sha256); {KEY_ADVICE}")
        self.key_sha256 = self.key_sha256.lower()
        return self

    @field_serializer("key_sha256", when_used="json")
    def _fingerprint(self, value: str | None) -> str | None:
        # `ragtune config` shows which key is which, not enough to look one up.
        return f"{value[:8]}... (masked)" if value else value


class WidgetKey(ApiKey):
    origins: list[str] = Field(
        [],
        description="Browser origins (scheme://host[:port], '*' for any) the key may be used from; they drive CORS. "
        "A request from another origin with this key is refused 403; requests without Origin (servers) are allowed.",
    )

    @field_validator("origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [normalise_origin(value) for value in values]


class AdminKey(ApiKey):
    pass


def normalise_origin(value: str) -> str:
    """'https://Shop.example/' -> 'https://shop.example'; a path or a missing scheme is an error."""
    origin = value.strip().rstrip("/").lower()
    if origin == "*" or re.fullmatch(r"https?://[a-z0-9.\-\[\]:]+", origin):
        return origin
    raise ValueError(f"origin {value!r} must be scheme://host[:port] as a browser sends it (e.g. https://shop.example), or '*'")


class AuthSettings(_Section):
    widget_keys: list[WidgetKey] = Field(
        [],
        description="Keys for the chat routes (/v1/chat, /v1/chat/completions, /v1/models, /v1/feedback), each "
        "{name, key or key_sha256, origins}. In the environment as JSON: "
        'RAGTUNE_AUTH__WIDGET_KEYS=\'[{"name": "shop", "key": "...", "origins": ["https://shop.example"]}]\'.',
    )
    admin_keys: list[AdminKey] = Field(
        [],
        description="Keys for everything, the admin API (/v1/admin) included, each {name, key or key_sha256}; "
        'RAGTUNE_AUTH__ADMIN_KEYS=\'[{"name": "ops", "key": "..."}]\'.',
    )
    allow_unauthenticated_loopback: bool = Field(
        True,
        description="With no key configured, serve an open API to loopback clients only (development); the server then "
        "refuses to listen on other interfaces. False: refuse to start without keys, so a deployment whose key "
        "variables went missing fails closed.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> AuthSettings:
        keys: list[ApiKey] = [*self.widget_keys, *self.admin_keys]
        names = [k.name for k in keys]
        if len(set(names)) < len(names):
            raise ValueError(f"key names must be distinct (they name the rate-limit counters): {sorted(names)}")
        if len({k.key_sha256 for k in keys}) < len(keys):
            raise ValueError("the same key is configured twice; give each holder its own key")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.widget_keys or self.admin_keys)


class LimitsSettings(_Section):
    window_s: float = Field(
        60.0, gt=0, description="Length of the request-counting window in seconds (fixed windows on the clock)."
    )
    requests_per_key: int = Field(
        60,
        ge=0,
        description="Requests one key may make per window on the chat routes; 0 = off. A widget key is shared by "
        "every visitor of its site, so this caps the whole site.",
    )
    requests_per_address: int = Field(
        30,
        ge=0,
        description="Requests one client address may make per window on the chat routes, with or without a key; 0 = off.",
    )
    streams_per_key: int = Field(
        4,
        ge=0,
        description="Answers one key may have in flight at once, streamed (until the last event) or not; without keys, "
        "per client address; 0 = off.",
    )
    stream_ttl_s: float = Field(
        600.0,
        gt=0,
        description="A held answer slot expires after this long, so a replica that dies mid-answer frees its slots; "
        "keep it above the longest answer (llm.timeout_s).",
    )
    stream_send_timeout_s: float = Field(
        30.0,
        ge=0,
        description="A response (a stream above all) whose client takes nothing for this long is closed, freeing its answer "
        "slot: a client that stops reading cannot hold a slot until stream_ttl_s. 0 = off.",
    )
    daily_tokens_per_key: int | None = Field(
        None,
        ge=1,
        description="Tokens (prompt + completion, as the answers report them) one key may spend per UTC day; past it "
        "answers get 429 until midnight UTC. None = unlimited.",
    )
