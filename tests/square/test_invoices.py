"""Which Square invoice a payment pays: looked up by the order both name, listing a location at most once."""
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import SyncRecord
from connectors.square.invoices import (
    INVOICES,
    square_invoice_of_payment,
    square_invoices_listed_at,
    square_invoices_listed_mark,
)
from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


class FakeSquare:
    """ListInvoices as Square answers it: every invoice of the location, drafts included."""

    def __init__(self, invoices):
        self.listed: list[str] = []
        self._invoices = invoices

    def invoices(self, *, location_id, page_size=100):
        self.listed.append(location_id)
        return iter([invoice for invoice in self._invoices if invoice["location_id"] == location_id])


class Stream:
    def __init__(self, integration):
        self.integration = integration


def _invoice(number, *, order_id, location_id="L1", status="UNPAID", version=1):
    return {"id": f"inv:0-{number}", "version": version, "location_id": location_id, "order_id": order_id,
            "status": status, "invoice_number": f"{number:06d}", "updated_at": "2026-12-06T10:00:00Z"}


def _payment(order_id, *, location_id="L1", created_at=None):
    created_at = created_at or timezone.now()
    return {"id": f"pay-{order_id}", "order_id": order_id, "location_id": location_id,
            "created_at": created_at.isoformat().replace("+00:00", "Z")}


@pytest.fixture
def integration():
    return IntegrationFactory(kind="square")


def test_a_payment_without_an_order_pays_no_invoice_and_costs_no_call(integration):
    # given
    square = FakeSquare([_invoice(1, order_id="O1")])
    # when
    found = square_invoice_of_payment(Stream(integration), {"id": "pay-1", "location_id": "L1"}, square=square)
    # then
    assert found is None
    assert square.listed == []


def test_a_just_published_invoice_is_found_by_listing_its_location_once_and_remembered(integration):
    # given: nothing listed yet; a draft and a published invoice at L1
    square = FakeSquare([_invoice(1, order_id="O1"), _invoice(2, order_id="O2", status="DRAFT")])
    stream = Stream(integration)
    # when
    found = square_invoice_of_payment(stream, _payment("O1"), square=square)
    # then: listed once, the published invoice stored as a received record, the draft not
    assert found["id"] == "inv:0-1"
    assert square.listed == ["L1"]
    assert list(SyncRecord.objects.filter(stream=INVOICES).values_list("source_id", "status")) == [
        ("inv:0-1", "received")]
    assert square_invoices_listed_at(integration, "L1") is not None
    # and a second payment of that invoice, in a new stream (the next poll), costs no call
    again = FakeSquare([])
    assert square_invoice_of_payment(Stream(integration), _payment("O1"), square=again)["id"] == "inv:0-1"
    assert again.listed == []


def test_pos_payments_cost_at_most_one_listing_per_location_per_stream(integration):
    # given: POS sales (orders no invoice names) at two locations
    square = FakeSquare([_invoice(1, order_id="O1")])
    stream = Stream(integration)
    # when
    results = [square_invoice_of_payment(stream, _payment(f"POS{n}", location_id=location), square=square)
               for n, location in enumerate(["L1", "L1", "L2", "L1", "L2"])]
    # then
    assert results == [None] * 5
    assert square.listed == ["L1", "L2"]


def test_a_payment_older_than_the_last_listing_costs_no_call(integration):
    # given: L1 listed a minute ago; the payment was made ten minutes ago
    square_invoices_listed_mark(integration, "L1", timezone.now() - timedelta(minutes=1))
    square = FakeSquare([_invoice(1, order_id="O1")])
    # when
    found = square_invoice_of_payment(Stream(integration), _payment(
        "POS", created_at=timezone.now() - timedelta(minutes=10)), square=square)
    # then
    assert found is None
    assert square.listed == []


def test_a_payment_newer_than_the_last_listing_lists_again(integration):
    # given: L1 listed an hour ago, the invoice published and paid since
    square_invoices_listed_mark(integration, "L1", timezone.now() - timedelta(hours=1))
    square = FakeSquare([_invoice(7, order_id="O7")])
    # when
    found = square_invoice_of_payment(Stream(integration), _payment("O7"), square=square)
    # then
    assert found["id"] == "inv:0-7"
    assert square.listed == ["L1"]
    assert square_invoices_listed_at(integration, "L1") > timezone.now() - timedelta(minutes=1)


def test_the_listing_mark_never_moves_back(integration):
    # given
    later = timezone.now()
    square_invoices_listed_mark(integration, "L1", later)
    # when: a slower listing that started earlier finishes after it
    square_invoices_listed_mark(integration, "L1", later - timedelta(minutes=5))
    # then
    assert square_invoices_listed_at(integration, "L1") == later
