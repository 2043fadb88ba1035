"""The pure parts of the Stripe streams: Stripe's smallest-unit amounts, Visma field text, the collection criterion,
what counts as a change to a Visma invoice already sent to Stripe."""
from decimal import Decimal

import pytest

from connectors.pipeline import SourceDataError
from connectors.stripe.flows import (
    VismaInvoicesStream,
    stripe_amount,
    visma_billed_changes,
    visma_billed_terms,
    visma_field_text,
)
from tests.factories import IntegrationFactory


@pytest.mark.parametrize("minor, currency, amount", [
    (5000, "JPY", Decimal("5000")),
    (125000, "NOK", Decimal("1250.00")),
    (1, "EUR", Decimal("0.01")),
    (1234, "KWD", Decimal("1.234")),
])
def test_stripe_amounts_are_in_the_currencys_smallest_unit(minor, currency, amount):
    # then
    assert stripe_amount(minor, currency, field="amount") == amount


@pytest.mark.parametrize("minor", ["5000", 50.0, True, None])
def test_an_amount_that_is_not_an_integer_is_refused(minor):
    # when
    with pytest.raises(SourceDataError) as raised:
        stripe_amount(minor, "NOK", field="amount")

    # then
    assert str(raised.value) == f"amount {minor!r} is not an integer amount"


def test_a_visma_reference_reads_as_its_id_and_plain_values_as_text():
    # then
    assert visma_field_text({"id": "STRIPE", "description": "Card via Stripe"}) == "STRIPE"
    assert visma_field_text("stripe-card") == "stripe-card"
    assert visma_field_text(None) == ""


@pytest.mark.parametrize("settings, invoice, collected", [
    ({}, {"paymentMethod": {"id": "STRIPE"}}, True),
    ({}, {"paymentMethod": {"id": "GIRO"}}, False),
    ({"collect_field": "customerRefNumber", "collect_value": "stripe"}, {"customerRefNumber": "STRIPE-42"}, True),
    ({"collect_field": "customerRefNumber", "collect_value": "stripe"}, {"customerRefNumber": None}, False),
])
def test_the_collection_criterion_is_configurable(db, settings, invoice, collected):
    # given
    integration = IntegrationFactory(kind="stripe", settings=settings)

    # then
    assert VismaInvoicesStream(integration).is_for_stripe(invoice) is collected


SENT = {"referenceNumber": "200001", "currencyId": "EUR", "amountInCurrency": 129.9, "vatTotalInCurrency": 0.0,
        "documentDueDate": "2026-06-30T00:00:00", "balanceInCurrency": 129.9, "status": "Open", "note": None,
        "invoiceLines": [{"description": "Tent", "amountInCurrency": 120.0},
                         {"description": "Pegs", "amountInCurrency": 9.9}]}


def test_balance_status_and_note_are_not_billed_terms():
    # given
    paid_in_part = {**SENT, "balanceInCurrency": 29.9, "status": "Closed", "note": "Called",
                    "amountInCurrency": "129.90"}

    # then
    assert visma_billed_terms(paid_in_part) == visma_billed_terms(SENT)
    assert visma_billed_changes(visma_billed_terms(SENT), visma_billed_terms(paid_in_part)) == []


def test_each_changed_billed_term_is_named_with_before_and_after():
    # given
    changed = {**SENT, "currencyId": "SEK", "documentDueDate": "2026-07-31T00:00:00",
               "invoiceLines": [{"description": "Tent (green)", "amountInCurrency": 120.0},
                                {"description": "Pegs", "amountInCurrency": 9.9}]}

    # then
    assert visma_billed_changes(visma_billed_terms(SENT), visma_billed_terms(changed)) == [
        "currency EUR → SEK", "due date 2026-06-30 → 2026-07-31", "lines changed (2 → 2 lines)"]
