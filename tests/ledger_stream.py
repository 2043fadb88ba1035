"""A stream defined in the tests (as issue 2 asks): payments from a source dict into an in-memory ledger.

The ledger stands for the target system: it keeps what was written, can be asked for a marker, and can be
told to fail or to "crash" before or after a write, so the engine's protocol can be proven without a vendor.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from datetime import date, datetime
from decimal import Decimal

from connectors.errors import PermanentError, TransientError, WaitFor
from connectors.pipeline import SourceDataError, SourceObject, Stream, Written
from connectors.webhooks import ParsedEvent, Verdict, WebhookVerifier
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.money import to_decimal


class Crash(BaseException):
    """A worker dying between the remote write and the local commit (not an Exception: nothing catches it)."""


class Ledger:
    """The target system: documents by id, what Visma would answer to a live reference check."""

    def __init__(self):
        self.lock = threading.Lock()
        self.documents: dict[str, dict] = {}  # target id → document
        self.writes = 0
        self.lookups = 0
        self.fail_next_lookup: Exception | None = None
        # Raised, in order, by the next writes before anything is stored (a refused or lost request).
        self.fail_next: list[BaseException] = []
        # Raised by the next write after the document is stored (the answer is lost, the write landed).
        self.fail_after_next_write: BaseException | None = None
        self.crash_after_next_write = False
        self.write_delay = 0.0
        # Chances, per write, that the answer is lost after the document is stored, or the worker dies then.
        self.lose_answer_rate = 0.0
        self.crash_rate = 0.0
        self.random = random.Random(7)
        # Account numbers Visma has active now, whatever the local mirror says (answers the live check).
        self.visma_accounts: set[str] = set()
        self.live_checks: list[tuple[str, str]] = []

    def write(self, posting: Posting) -> str:
        with self.lock:
            if self.fail_next:
                raise self.fail_next.pop(0)
        if self.write_delay:
            time.sleep(self.write_delay)
        with self.lock:
            self.writes += 1
            target_id = f"JT-{len(self.documents) + 1:05d}"
            self.documents[target_id] = posting.to_json()
            after, self.fail_after_next_write = self.fail_after_next_write, None
            if self.crash_after_next_write:
                after, self.crash_after_next_write = Crash("worker died after the remote write"), False
            chance = self.random.random()
            if chance < self.crash_rate:
                after = Crash("worker died after the remote write")
            elif chance < self.crash_rate + self.lose_answer_rate:
                after = TransientError("read timeout: the answer was lost")
        if after is not None:
            raise after
        return target_id

    def markers(self) -> list[str]:
        with self.lock:
            return [document["marker"] for document in self.documents.values()]

    def find(self, marker: str) -> str | None:
        with self.lock:
            self.lookups += 1
            if self.fail_next_lookup is not None:
                failure, self.fail_next_lookup = self.fail_next_lookup, None
                raise failure
            return next((tid for tid, doc in self.documents.items() if doc["marker"] == marker), None)


class SourceSystem(dict):
    """Source id → payment payload, what read_one / read_window serve; can be told to fail mid-window."""

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self) -> None:
        self.clear()
        self.read_failures: list[Exception] = []  # raised by read_window after its first object
        self.windows: list[tuple[datetime, datetime]] = []
        # How far the source says it had published when a window was read (None: all of it).
        self.published_until: datetime | None = None


LEDGER = Ledger()
SOURCE = SourceSystem()


class PaymentsStream(Stream):
    name = "payments"
    kind = "paypal"
    target_kind = "journal"

    def read_window(self, start, end):
        SOURCE.windows.append((start, end))
        for number, (source_id, payload) in enumerate(sorted(SOURCE.items())):
            if number == 1 and SOURCE.read_failures:
                raise SOURCE.read_failures.pop(0)
            yield self._source(source_id, payload)

    def published_until(self):
        return SOURCE.published_until

    def read_one(self, source_id):
        payload = SOURCE.get(source_id)
        return self._source(source_id, payload) if payload else None

    def _source(self, source_id, payload):
        updated_at = datetime.fromisoformat(payload["updated_at"]) if payload.get("updated_at") else None
        return SourceObject(source_id=source_id, payload=payload, updated_at=updated_at,
                            amount=Decimal(payload["amount"]), currency=payload["currency"])

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        if payload.get("waits_for") and self.marker(payload["waits_for"]) not in {
            doc["marker"] for doc in LEDGER.documents.values()
        }:
            raise WaitFor(f"original payment {payload['waits_for']} is not posted yet",
                          on=("payments", payload["waits_for"]))
        try:
            gross = to_decimal(payload["amount"])
            fee = to_decimal(payload.get("fee", "0"), field="fee")
        except KeyError as exc:
            raise SourceDataError(f"field {exc.args[0]} is missing") from exc
        currency = payload["currency"]
        lines = [PostingLine(role="clearing", debit=gross - fee), PostingLine(role="account", credit=gross)]
        if fee:
            lines.insert(1, PostingLine(role="fee", debit=fee))
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency, date=date(2026, 11, 2),
            description=f"Payment {source.source_id}",
            facts=MatchFacts(transaction_type=payload.get("type", "capture"), amount=gross, currency=currency,
                             customer_group=payload.get("group", ""), payment_method=payload.get("method", "")),
            lines=lines,
        )

    def find_posted(self, posting, record):
        target_id = LEDGER.find(posting.marker)
        return Written.of(posting, target_id) if target_id else None

    def write(self, posting, record):
        return Written.of(posting, LEDGER.write(posting))

    def live_check(self):
        tenant = self.tenant

        def visma_has(kind: str, key: str) -> bool:
            from mappings.models import GLAccount

            LEDGER.live_checks.append((kind, key))
            if kind == "account" and key in LEDGER.visma_accounts:
                # As the Visma side does: the answer refreshes the mirror.
                GLAccount.objects.update_or_create(tenant=tenant, number=key, defaults={"active": True})
                return True
            return False

        return visma_has


class TestHmacVerifier(WebhookVerifier):
    """HMAC-SHA256 of the body, base64, in X-Test-Signature, with the partner connection's webhook_secret."""

    def verify(self, *, integration, headers, body, url):
        secret = (integration.partner_connection.credentials or {}).get("webhook_secret")
        if not secret:
            return Verdict.refused("no webhook secret configured")
        given = {k.lower(): v for k, v in headers.items()}.get("x-test-signature", "")
        if not given:
            return Verdict.refused("X-Test-Signature header missing")
        expected = sign(secret, body)
        return Verdict.genuine() if hmac.compare_digest(given, expected) else Verdict.refused("signature mismatch")

    def parse(self, *, headers, body):
        try:
            data = json.loads(body)
            return [ParsedEvent(event_id=str(data["id"]), event_type=data["type"], body=body.decode())]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"field {exc} missing or body not JSON") from exc

    def objects_touched(self, event):
        data = json.loads(event.body)
        return [("payments", data["resource_id"])]


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


__all__ = ["LEDGER", "SOURCE", "Crash", "PaymentsStream", "TestHmacVerifier", "PermanentError", "TransientError",
           "sign"]
