"""Square test helpers: payloads shaped like api.json's Payment, PaymentRefund and Location, a fake SquareApi, and a
tenant whose Visma mirror has the stores' cost centers and accounts (as sandbox/visma_seed.py seeds them)."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from connectors import registry
from connectors.pipeline import Written
from connectors.square.flows import PaymentSource, RefundSource, SquareToVisma
from connectors.visma.target import VismaTarget
from mappings.models import GLMappingRule
from tests.factories import DimensionValueFactory, GLAccountFactory, IntegrationFactory

_ids = itertools.count(1)

OSLO, BERGEN, TRONDHEIM = "L0SLO0000000001", "LBERGEN00000002", "LTRONDHEIM00003"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(amount: int, currency: str = "NOK") -> dict:
    return {"amount": amount, "currency": currency}


def square_location(location_id: str, name: str, *, status: str = "ACTIVE", currency: str = "NOK",
                    created_at: str = "2024-01-01T08:00:00Z") -> dict:
    """A Location as ListLocations returns it (api.json `Location`)."""
    return {"id": location_id, "name": name, "status": status, "currency": currency, "timezone": "Europe/Oslo",
            "country": "NO", "created_at": created_at, "merchant_id": "MLNORDLYS"}


def square_payment(*, location_id: str = BERGEN, amount: int = 10000, tip: int = 0, currency: str = "NOK",
                   status: str = "COMPLETED", source_type: str = "CARD", fees: list[tuple[int, str]] | None = None,
                   created_at: datetime | None = None, order_id: str | None = None, payment_id: str | None = None,
                   updated_at: datetime | None = None) -> dict:
    """A Payment (api.json `Payment`); `fees`: processing_fee[] as (amount, type) pairs, None for none yet."""
    created_at = created_at or timezone.now() - timedelta(minutes=5)
    payment = {
        "id": payment_id or f"PAY{next(_ids):020d}", "created_at": rfc3339(created_at),
        "updated_at": rfc3339(updated_at or created_at + timedelta(seconds=10)),
        "amount_money": money(amount, currency), "total_money": money(amount + tip, currency),
        "approved_money": money(amount + tip, currency), "status": status, "source_type": source_type,
        "location_id": location_id, "delay_action": "CANCEL", "version_token": "v1",
    }
    if tip:
        payment["tip_money"] = money(tip, currency)
    if fees is not None:
        payment["processing_fee"] = [
            {"effective_at": rfc3339(created_at + timedelta(seconds=10 * (index + 1))), "type": kind,
             "amount_money": money(fee, currency)} for index, (fee, kind) in enumerate(fees)]
    if order_id:
        payment["order_id"] = order_id
    return payment


def square_refund(payment: dict, *, amount: int, status: str = "COMPLETED", fee_returned: int = 0,
                  refund_id: str | None = None, created_at: datetime | None = None, unlinked: bool = False) -> dict:
    """A PaymentRefund (api.json `PaymentRefund`); a fee Square returns is a negative processing_fee entry."""
    created_at = created_at or timezone.now() - timedelta(minutes=1)
    currency = payment["amount_money"]["currency"]
    refund = {"id": refund_id or f"{payment['id']}_REF{next(_ids)}", "status": status,
              "amount_money": money(amount, currency), "payment_id": payment["id"],
              "location_id": payment["location_id"], "created_at": rfc3339(created_at),
              "updated_at": rfc3339(created_at + timedelta(seconds=5)), "reason": "Returned goods"}
    if fee_returned:
        refund["processing_fee"] = [{"effective_at": rfc3339(created_at), "type": "INITIAL",
                                     "amount_money": money(-fee_returned, currency)}]
    if unlinked:
        refund["unlinked"] = True
        refund.pop("payment_id")
    return refund


class FakeSquare:
    """SquareApi's read methods over in-memory objects, with what each call asked for; the first location is the
    main one."""

    def __init__(self, locations: list[dict] | None = None):
        self.location_rows = locations if locations is not None else [
            square_location(OSLO, "Store Oslo Sentrum"), square_location(BERGEN, "Store Bergen"),
            square_location(TRONDHEIM, "Store Trondheim", status="INACTIVE")]
        self.payment_rows: dict[str, dict] = {}
        self.refund_rows: dict[str, dict] = {}
        self.calls: list[tuple] = []

    def add(self, *objects: dict) -> None:
        for found in objects:
            (self.refund_rows if "payment_id" in found or found.get("unlinked") else self.payment_rows)[
                found["id"]] = found

    def close(self) -> None:
        pass

    def locations(self) -> list[dict]:
        self.calls.append(("locations",))
        return list(self.location_rows)

    def get_one(self, path: str, key: str) -> dict | None:
        self.calls.append(("get_one", path))
        assert (path, key) == ("/v2/locations/main", "location")  # RetrieveLocation "main"
        return self.location_rows[0] if self.location_rows else None

    def payment(self, payment_id: str) -> dict | None:
        self.calls.append(("payment", payment_id))
        return self.payment_rows.get(payment_id)

    def payments(self, *, location_id, updated_from, updated_to, begin_time, page_size=100) -> Iterator[dict]:
        self.calls.append(("payments", location_id))
        for payment in sorted(self.payment_rows.values(), key=lambda row: row["updated_at"]):
            updated = datetime.fromisoformat(payment["updated_at"])
            if payment["location_id"] == location_id and updated_from <= updated and (
                    updated_to is None or updated <= updated_to):
                yield payment

    def refund(self, refund_id: str) -> dict | None:
        self.calls.append(("refund", refund_id))
        return self.refund_rows.get(refund_id)

    def refunds(self, *, updated_from, updated_to, begin_time, page_size=100) -> Iterator[dict]:
        self.calls.append(("refunds",))
        yield from sorted(self.refund_rows.values(), key=lambda row: row["updated_at"])

    def invoices(self, *, location_id, page_size=100) -> Iterator[dict]:
        self.calls.append(("invoices", location_id))
        return iter(())


class LedgerTarget(VismaTarget):
    """Visma as a list: what the stream writes lands here; reference data is the mirror only; Square is the fake."""

    written: list = []
    fake_square: FakeSquare | None = None

    @property
    def square(self):
        return self.fake_square

    def find_posted(self, posting, record):
        return next((Written.of(posting, number) for number, found in enumerate(self.written, start=1)
                     if found.marker == posting.marker), None)

    def write(self, posting, record):
        self.written.append(posting)
        return Written.of(posting, f"{len(self.written):06d}")

    def live_check(self):
        return None


class LedgerPayments(SquareToVisma, LedgerTarget, PaymentSource):
    """The payments stream writing to the list."""


class LedgerRefunds(SquareToVisma, LedgerTarget, RefundSource):
    """The refunds stream writing to the list."""


class SquareWorld:
    """A tenant with two stores and a closed one, a rule for each open store, and the Visma mirror they need."""

    def __init__(self):
        # An explicit start a month back: the tests' payments were taken minutes to days ago, after it.
        self.begin_time = timezone.now() - timedelta(days=30)
        self.integration = IntegrationFactory(kind="square", settings={"page_size": 5,
                                                                      "begin_time": self.begin_time.isoformat()})
        self.tenant = self.integration.tenant
        for number, kind in (("1582", "Asset"), ("7770", "Expense"), ("3000", "Income"), ("3020", "Income"),
                             ("2960", "Liability")):
            GLAccountFactory(tenant=self.tenant, number=number, account_type=kind)
        GLAccountFactory(tenant=self.tenant, number="3099", account_type="Income", active=False)
        for value, active in (("310", True), ("320", True), ("330", True), ("390", False)):
            DimensionValueFactory(tenant=self.tenant, segment_id=1, value=value, active=active)
        self.square = FakeSquare()
        LedgerTarget.written = []
        LedgerTarget.fake_square = self.square
        # Each store its own rule: a rule for any store never books a Square payment (review finding 8).
        self.rule_oslo = self.rule("Square sales, Oslo", priority=50, location=OSLO, dimensions={"1": "310"})
        self.rule_bergen = self.rule("Square sales, Bergen", priority=90, location=BERGEN, gl_account="3020",
                                     dimensions={"1": "320"})

    def rule(self, name: str, **fields) -> GLMappingRule:
        values = {"gl_account": "3000", "fee_account": "7770", "clearing_account": "1582", "tip_account": "2960",
                  **fields}
        return GLMappingRule.objects.create(tenant=self.tenant, system="square", name=name, **values)

    def payments(self) -> LedgerPayments:
        return LedgerPayments(self.integration)

    def refunds(self) -> LedgerRefunds:
        return LedgerRefunds(self.integration)


@pytest.fixture
def world(db, monkeypatch) -> SquareWorld:
    # Streams the pipeline makes itself (a waiter woken, a payment a refund reads first) write to the list too.
    monkeypatch.setitem(registry.kind_spec("square").streams, "payments", LedgerPayments)
    monkeypatch.setitem(registry.kind_spec("square").streams, "refunds", LedgerRefunds)
    yield SquareWorld()
    LedgerTarget.fake_square = None
