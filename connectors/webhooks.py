"""What every vendor's webhook support supplies: "is this delivery genuine" and "what does it touch"."""
from __future__ import annotations

import abc
import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import InboundEvent, Integration, WebhookRefusal

# Deeper than any vendor's event (Stripe's are under 10), far below what recursion in json and the ORM can take.
MAX_JSON_DEPTH = 64
# InboundEvent.event_id and event_type are CharField(max_length=255): PostgreSQL refuses longer, SQLite does not.
MAX_ID_CHARS = 255
# Only these JSON escapes can put a NUL or a lone surrogate into a decoded string (raw bytes cannot: UTF-8 has no
# surrogates, and JSON forbids raw control characters in strings).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


Refusal = WebhookRefusal.Reason


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    # What kind of refusal it is: refused deliveries are counted per kind, whatever the sender put in the reason.
    refusal: str = Refusal.BAD_SIGNATURE

    @classmethod
    def genuine(cls) -> Verdict:
        return cls(True)

    @classmethod
    def refused(cls, reason: str, refusal: str = Refusal.BAD_SIGNATURE) -> Verdict:
        return cls(False, reason, refusal)


def text_problem(name: str, value: Any, *, required: bool = True, max_chars: int = MAX_ID_CHARS) -> str | None:
    """Why `value` cannot be stored as a short text column (an id, a type), or None."""
    if not isinstance(value, str):
        return f"{name} is not a string"
    if not value:
        return f"{name} is empty" if required else None
    if len(value) > max_chars:
        return f"{name} is longer than {max_chars} characters"
    if not value.isprintable():
        # Control characters (NUL among them) and lone surrogates are not printable; neither can be stored.
        return f"{name} holds a control character or a lone surrogate"
    return None


def _unstorable_string(document: Any) -> str | None:
    """The first string (key or value) holding a NUL or a lone surrogate, shown escaped; None when there is none."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and ("\x00" in node or _has_surrogate(node)):
            return ascii(node[:40])
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _depth_exceeds(document: Any, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def webhook_document(body: bytes) -> Any:
    """The JSON document of a delivery; ValueError naming why when it could not be stored and read back as sent.

    Strict where the standard is: UTF-8 without a byte order mark (RFC 8259 §8.1: senders MUST NOT add one), no
    NaN/Infinity; and bounded: nested at most MAX_JSON_DEPTH deep, no NUL or lone surrogate in any string.
    """
    if body.startswith(codecs.BOM_UTF8):
        raise ValueError("body starts with a UTF-8 byte order mark (RFC 8259 §8.1: JSON is sent without one)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not UTF-8 (byte {exc.start})") from None
    # Cheap bound first: a body with fewer brackets than the limit cannot nest deeper than it.
    deep = body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if deep and _depth_exceeds(document, MAX_JSON_DEPTH):
        raise ValueError(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    if _SUSPECT_ESCAPE.search(body):
        unstorable = _unstorable_string(document)
        if unstorable:
            raise ValueError(f"body holds a NUL or a lone surrogate in the string {unstorable}")
    return document


@dataclass(frozen=True)
class ParsedEvent:
    """One notification in a delivery (Visma sends several in one JSON array); refuses what cannot be stored."""

    event_id: str
    event_type: str
    body: str

    def __post_init__(self):
        problem = text_problem("event id", self.event_id) or text_problem(
            "event type", self.event_type, required=False
        )
        if problem:
            raise ValueError(problem)


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
