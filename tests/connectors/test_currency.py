"""A converted payment valued at Visma's rate: the split is exact and every journal balances, gain or loss."""
from datetime import date
from decimal import Decimal

import pytest

from connectors.pipeline import SourceDataError
from connectors.visma.currency import converted_within_rounding, settlement_valued, visma_exchange_rate
from connectors.visma.postings import visma_fee_journal
from mappings.documents import MatchFacts, Posting, PostingLine
from tests.factories import hand_marker


class RatesClient:
    """What visma_exchange_rate asks of a VismaClient: GET with params, the answer's text."""

    def __init__(self, text: str):
        self.text, self.asked = text, []

    def get(self, path, *, params=None):
        self.asked.append((path, params))
        return self


@pytest.mark.parametrize("gross, rate, visma_rate, fee, currency", [
    (Decimal("100.00"), Decimal("11.40"), Decimal("11.50"), Decimal("3.88"), "SEK"),   # loss
    (Decimal("100.00"), Decimal("11.62"), Decimal("11.50"), Decimal("3.88"), "SEK"),   # gain
    (Decimal("99.99"), Decimal("11.5"), Decimal("11.5"), Decimal("0"), "SEK"),          # same rate, no fee
    (Decimal("5000"), Decimal("0.0712"), Decimal("0.0705"), Decimal("180"), "SEK"),     # from JPY
    (Decimal("12.34"), Decimal("153.27"), Decimal("154.01"), Decimal("0.66"), "JPY"),   # into JPY
])
def test_every_settlement_journal_balances_and_clearing_ends_at_what_was_credited(gross, rate, visma_rate, fee,
                                                                                  currency):
    # given: what the processor credited, rounded as it rounds
    places = Decimal(1) if currency == "JPY" else Decimal("0.01")
    fee_settled = (fee * rate).quantize(places)
    net_settled = ((gross - fee) * rate).quantize(places)
    settlement = settlement_valued(transaction_gross=gross, transaction_currency="EUR", currency=currency,
                                   net=net_settled, fee=fee_settled, exchange_rate=rate, visma_rate=visma_rate)
    posting = Posting(
        document="customer_payment", marker=hand_marker("pay"), currency="EUR", date=date(2026, 3, 2),
        description="payment", facts=MatchFacts(transaction_type="invoice_payment", amount=gross, currency="EUR"),
        lines=[PostingLine(role="clearing", debit=gross, account="1580"), PostingLine(role="fee", account="7770"),
               PostingLine(role="exchange_difference", account="7960"),
               PostingLine(role="account", credit=gross, account="1510")],
        customer="10004", extra={"invoice_number": "100002", "settlement": settlement.to_json()})

    # when
    journal = visma_fee_journal(posting)

    # then
    assert settlement.gross == (gross * visma_rate).quantize(places)
    assert settlement.gross - settlement.fee - settlement.exchange_difference == net_settled
    if journal is None:
        assert settlement.fee == settlement.exchange_difference == 0
        return
    assert journal.currency == currency and journal.is_balanced
    clearing = sum(line.debit - line.credit for line in journal.lines if line.role == "clearing")
    assert settlement.gross + clearing == net_settled
    assert {line.account for line in journal.lines} <= {"1580", "7770", "7960"}


def test_a_gain_is_credited_to_the_exchange_difference_account():
    # given: the processor's rate beat Visma's
    settlement = settlement_valued(transaction_gross=Decimal("100.00"), transaction_currency="EUR", currency="SEK",
                                   net=Decimal("1116.91"), fee=Decimal("45.09"), exchange_rate=Decimal("11.62"),
                                   visma_rate=Decimal("11.50"))

    # then
    assert settlement.exchange_difference == Decimal("-12.00")
    [fee, gain] = settlement.lines("PayPal X")
    assert (fee.role, fee.debit, gain.role, gain.debit, gain.credit) == (
        "fee", Decimal("45.09"), "exchange_difference", Decimal("0"), Decimal("12.00"))


def test_vismas_rate_is_the_newest_effective_on_the_day_read_as_decimal():
    # given
    client = RatesClient('[{"fromCurrencyId": "EUR", "toCurrencyId": "SEK", "rate": 11.2, '
                         '"effectiveDate": "2026-01-01T00:00:00", "multDiv": "Multiply"}, '
                         '{"fromCurrencyId": "EUR", "toCurrencyId": "SEK", "rate": 11.4931, '
                         '"effectiveDate": "2026-03-01T00:00:00", "multDiv": "Multiply"}, '
                         '{"fromCurrencyId": "EUR", "toCurrencyId": "SEK", "rate": 12.0, '
                         '"effectiveDate": "2026-03-05T00:00:00", "multDiv": "Multiply"}]')

    # when
    rate = visma_exchange_rate(client, from_currency="EUR", to_currency="SEK", day=date(2026, 3, 2))

    # then
    assert (type(rate), rate) == (Decimal, Decimal("11.4931"))
    assert client.asked[0][1]["fromCurrency"] == "EUR" and client.asked[0][1]["toCurrency"] == "SEK"


def test_a_divide_rate_is_inverted():
    # given
    client = RatesClient('[{"fromCurrencyId": "EUR", "toCurrencyId": "SEK", "rate": 0.08, '
                         '"effectiveDate": "2026-01-01T00:00:00", "multDiv": "Divide"}]')

    # then
    assert visma_exchange_rate(client, from_currency="EUR", to_currency="SEK", day=date(2026, 3, 2)) == Decimal("12.5")


def test_no_rate_in_visma_is_a_flag_naming_the_pair_and_day():
    # when
    with pytest.raises(SourceDataError) as raised:
        visma_exchange_rate(RatesClient("[]"), from_currency="EUR", to_currency="USD", day=date(2026, 3, 2))

    # then
    assert str(raised.value) == ("Visma has no exchange rate EUR→USD on 2026-03-02: add it in Visma (currency rates) "
                                 "so the converted payment can be valued")


@pytest.mark.parametrize("converted, within", [
    (Decimal("1095.77"), True), (Decimal("1095.78"), True), (Decimal("1095.76"), True), (Decimal("1095.80"), False),
])
def test_a_processors_converted_amount_must_be_the_amount_times_its_rate_to_a_minor_unit(converted, within):
    # then: 96.12 × 11.40 = 1095.768
    assert converted_within_rounding(amount=Decimal("96.12"), converted=converted, rate=Decimal("11.40"),
                                     currency="SEK") is within
