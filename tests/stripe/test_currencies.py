"""Stripe's own minor units, one test per Stripe special currency, both directions (docs/stripe-api.md)."""
from decimal import Decimal

import pytest
import stripe

from connectors.pipeline import SourceDataError
from connectors.stripe.currencies import stripe_amount, stripe_minor, stripe_minor_units


@pytest.mark.parametrize("currency, places", [
    ("NOK", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("MGA", 0), ("UGX", 0), ("ISK", 2), ("HUF", 2), ("TWD", 2),
    ("KWD", 3), ("BHD", 3), ("jpy", 0),
])
def test_stripes_table_gives_each_currencys_decimals(currency, places):
    # then
    assert stripe_minor_units(currency) == places


def test_isk_is_two_decimal_at_stripe_and_whole_kronur_in_the_books():
    # then: ISO 4217 gives ISK 0 decimals; Stripe's 50000 is 500 krónur
    assert stripe_amount(50000, "ISK", field="amount") == Decimal("500")
    assert stripe_minor(Decimal("500"), "ISK", field="amount") == 50000


def test_fractional_isk_is_refused_both_ways():
    # when
    with pytest.raises(SourceDataError) as to_stripe:
        stripe_minor(Decimal("500.50"), "ISK", field="line 1")
    with pytest.raises(SourceDataError) as from_stripe:
        stripe_amount(50050, "ISK", field="amount")

    # then
    assert str(to_stripe.value) == ("line 1 500.50 ISK: Stripe takes ISK in whole units only (amount divisible by "
                                    "100)")
    assert str(from_stripe.value) == "amount 50050 is 500.50 ISK: finer than ISK is booked (0 decimals)"


@pytest.mark.parametrize("currency", ["HUF", "TWD"])
def test_huf_and_twd_take_decimals_in_charges_and_invoices_but_whole_units_in_payouts(currency):
    # then
    assert stripe_amount(123456, currency, field="amount") == Decimal("1234.56")
    assert stripe_minor(Decimal("1234.56"), currency, field="amount") == 123456
    assert stripe_minor(Decimal("1234"), currency, field="amount", payout=True) == 123400
    with pytest.raises(SourceDataError) as raised:
        stripe_minor(Decimal("1234.56"), currency, field="amount", payout=True)
    assert str(raised.value) == (f"amount 1234.56 {currency}: Stripe takes {currency} payouts in whole units only "
                                 "(amount divisible by 100)")


def test_mga_is_zero_decimal_at_stripe_though_iso_gives_it_two():
    # then
    assert stripe_amount(5000, "MGA", field="amount") == Decimal("5000.00")
    assert stripe_minor(Decimal("5000.00"), "MGA", field="amount") == 5000
    with pytest.raises(SourceDataError) as raised:
        stripe_minor(Decimal("5000.20"), "MGA", field="amount")
    assert str(raised.value) == "amount 5000.20 MGA has more decimals than Stripe takes for MGA (0)"


def test_ugx_is_zero_decimal():
    # then
    assert stripe_amount(5000, "UGX", field="amount") == Decimal("5000")
    assert stripe_minor(Decimal("5000"), "UGX", field="amount") == 5000
    with pytest.raises(SourceDataError):
        stripe_minor(Decimal("5000.5"), "UGX", field="amount")


def test_jpy_is_zero_decimal():
    # then
    assert stripe_amount(5000, "JPY", field="amount") == Decimal("5000")
    assert stripe_minor(Decimal("5000"), "JPY", field="amount") == 5000


def test_a_three_decimal_amount_must_end_in_zero():
    # then
    assert stripe_amount(5120, "KWD", field="amount") == Decimal("5.120")
    assert stripe_minor(Decimal("5.12"), "KWD", field="amount") == 5120
    with pytest.raises(SourceDataError) as raised:
        stripe_minor(Decimal("5.124"), "KWD", field="amount")
    assert str(raised.value) == "amount 5.124 KWD: Stripe takes KWD amounts with a last digit of 0 only"


def test_the_sandbox_refuses_fractional_isk_as_stripe_does(sandbox_stripe):
    # when
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sandbox_stripe.v1.charges.create({"amount": 50050, "currency": "isk", "source": "tok_visa"})
    whole = sandbox_stripe.v1.charges.create({"amount": 50000, "currency": "isk", "source": "tok_visa"})

    # then
    assert raised.value.code == "invalid_charge_amount_no_decimal_compatible"
    assert (whole.status, whole.amount) == ("succeeded", 50000)


@pytest.mark.parametrize("currency, amount, problem", [
    ("ISK", "12500.50", "line 1 12500.50 ISK: Stripe takes ISK in whole units only (amount divisible by 100)"),
    ("KWD", "10.125", "line 1 10.125 KWD: Stripe takes KWD amounts with a last digit of 0 only"),
    ("MGA", "5000.20", "line 1 5000.20 MGA has more decimals than Stripe takes for MGA (0)"),
])
def test_a_visma_invoice_with_an_amount_stripe_would_refuse_is_flagged_before_anything_is_sent(db, currency, amount,
                                                                                                 problem):
    # given
    from dataclasses import replace

    from tests.stripe.test_flows import INVOICE, _invoice_stream

    stream, api = _invoice_stream({}, {"id": "cus_A", "metadata": {"visma_customer": "10004"}, "currency": None})
    posting = replace(INVOICE, currency=currency, extra={**INVOICE.extra, "lines": [
        {"description": "Tent", "amount": amount}]})

    # when
    problems = stream.problems(posting)

    # then
    assert problems == [f"Visma invoice 200001: {problem}"]
    assert api.created == []
