"""What every vendor's webhook support supplies: "is this delivery genuine" and "what does it touch"."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

from .models import InboundEvent, Integration


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""

    @classmethod
    def genuine(cls) -> Verdict:
        return cls(True)

    @classmethod
    def refused(cls, reason: str) -> Verdict:
        return cls(False, reason)


@dataclass(frozen=True)
class ParsedEvent:
    """One notification in a delivery (Visma sends several in one JSON array)."""

    event_id: str
    event_type: str
    body: str


class WebhookVerifier(abc.ABC):
    """Per vendor: a pure signature check, the parse of a delivery, and the objects an event touches."""

    @abc.abstractmethod
    def verify(self, *, integration: Integration, headers: Mapping[str, str], body: bytes, url: str) -> Verdict:
        """Genuine or not, with why not; never raises on bad input. No configured secret → refused."""

    @abc.abstractmethod
    def parse(self, *, headers: Mapping[str, str], body: bytes) -> list[ParsedEvent]:
        """The events in a verified delivery; raise ValueError naming the field when the body is malformed."""

    @abc.abstractmethod
    def objects_touched(self, event: InboundEvent) -> list[tuple[str, str]]:
        """(stream, source id) of each object the event is about; empty when no stream cares."""

    def event_apply(self, event: InboundEvent) -> bool:
        """Act on an event that is about no synced record (Visma reference data changed); True when it was one."""
        return False
