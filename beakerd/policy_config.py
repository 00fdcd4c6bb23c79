"""The configuration file's repository policies and webhook endpoints, checked at the boundary.

In YAML:

    policies:
      - repositories: "alice/*"        # a namespace; `alice/app` names one repository
        immutable_tags: ["v*"]
        tags: "dev-*"                  # what keep_newest and tags_older_than look at
        keep_newest: 5
        tags_older_than: 30d
        untagged_older_than: 7d
    webhooks:
      - url: https://ci.example.com/hooks/beakerd
        secret: s3cr3t
        events: [push, delete, image_commit, quota_exceeded]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from storage.database import Database
from storage.outbox import EVENTS, Endpoint, Event, Outbox
from storage.policies import Policies, Policy, check_pattern, parse_duration

if TYPE_CHECKING:
    from beakerd.settings import Settings

Duration = Annotated[float, BeforeValidator(parse_duration)]


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repositories: str = Field(description="Repositories covered: `alice/*`, `alice/app`, `*`.")
    immutable_tags: list[str] = Field(default_factory=list)
    tags: str = "*"
    keep_newest: int | None = Field(default=None, ge=0)
    tags_older_than: Duration | None = None
    untagged_older_than: Duration | None = None

    @field_validator("repositories", "tags")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return check_pattern(value)

    @field_validator("immutable_tags")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return [check_pattern(p) for p in value]

    def policy(self) -> Policy:
        return Policy(
            repositories=self.repositories,
            immutable_tags=tuple(self.immutable_tags),
            tags=self.tags,
            keep_newest=self.keep_newest,
            tags_older_than=self.tags_older_than,
            untagged_older_than=self.untagged_older_than,
        )


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s]+$")
    secret: str = Field(min_length=1)
    events: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)
    # Names the endpoint in the outbox; two endpoints may share a URL with other filters.
    name: str | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint(self.name or self.url, self.url, self.secret, frozenset(self.events))


def policies_of(db: Database, settings: Settings) -> Policies:
    return Policies(db, [p.policy() for p in settings.policies])


def outbox_of(db: Database, settings: Settings) -> Outbox:
    return Outbox(
        db,
        [w.endpoint() for w in settings.webhooks],
        max_rows=settings.webhook_outbox_max_events,
        max_attempts=settings.webhook_max_attempts,
    )
