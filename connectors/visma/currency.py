"""A payment the processor converted, valued as the books value it: Visma's exchange rate for the day
(GET /v2/currencyrate), and the split of what was credited into fee, net and the exchange difference."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from decimal import Decimal

from connectors.pipeline import SourceDataError
from mappings.documents import PostingLine
from mappings.money import quantize

CURRENCY_RATES = "/v2/currencyrate"


def visma_exchange_rate(client, *, from_currency: str, to_currency: str, day: date) -> Decimal:
    """Visma's rate on `day`: one unit of `from_currency` in `to_currency` (swagger CurrencyRateDto, the newest
    effectiveDate on or before the day; multDiv "Divide" means the rate divides). Read as Decimal from the text (the
    rate is a JSON number). SourceDataError when Visma has none."""
    params = {"fromCurrency": from_currency, "toCurrency": to_currency,
              "toDate": datetime.combine(day, time(23, 59, 59)).isoformat()}
    rows = json.loads(client.get(CURRENCY_RATES, params=params).text or "[]", parse_float=Decimal) or []
    found = [row for row in rows if row.get("fromCurrencyId") == from_currency
             and row.get("toCurrencyId") == to_currency and row.get("rate")
             and str(row.get("effectiveDate") or "")[:10] <= day.isoformat()]
    if not found:
        raise SourceDataError(f"Visma has no exchange rate {from_currency}→{to_currency} on {day}: add it in Visma "
                              "(currency rates) so the converted payment can be valued")
    newest = max(found, key=lambda row: str(row.get("effectiveDate") or ""))
    rate = Decimal(str(newest["rate"]))
    return 1 / rate if newest.get("multDiv") == "Divide" else rate


@dataclass(frozen=True)
class Settlement:
    """A payment in one currency that the processor credited in another (the settlement currency): what it credited
    (net) and kept (fee) in the settlement currency, the gross valued at Visma's rate, and the difference between
    the processor's rate and Visma's (positive: a loss, debited; negative: a gain, credited)."""

    currency: str
    transaction_currency: str
    transaction_gross: Decimal
    exchange_rate: Decimal
    visma_rate: Decimal
    gross: Decimal
    fee: Decimal
    net: Decimal
    exchange_difference: Decimal

    def to_json(self) -> dict:
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> Settlement:
        return cls(**{key: (value if key in ("currency", "transaction_currency") else Decimal(value))
                      for key, value in data.items()})

    @property
    def text(self) -> str:
        return (f"{self.transaction_gross} {self.transaction_currency} converted at {self.exchange_rate} "
                f"(Visma {self.visma_rate}) → {self.net} {self.currency} net")

    def lines(self, what: str) -> list[PostingLine]:
        """fee and exchange difference out of clearing, in the settlement currency: what turns the clearing
        account's movement at Visma's rate (gross) into what the processor credited (net)."""
        lines = []
        if self.fee:
            lines.append(PostingLine(role="fee", debit=self.fee, description=f"{what} fee"))
        if self.exchange_difference > 0:
            lines.append(PostingLine(role="exchange_difference", debit=self.exchange_difference,
                                     description=f"{what} exchange difference ({self.text})"))
        elif self.exchange_difference < 0:
            lines.append(PostingLine(role="exchange_difference", credit=-self.exchange_difference,
                                     description=f"{what} exchange difference ({self.text})"))
        return lines


def settlement_valued(*, transaction_gross: Decimal, transaction_currency: str, currency: str, net: Decimal,
                      fee: Decimal, exchange_rate: Decimal, visma_rate: Decimal) -> Settlement:
    """The converted payment valued at Visma's rate: gross = transaction gross × Visma's rate (rounded to the
    settlement currency), and the exchange difference = gross − fee − net, so that every journal balances."""
    gross = quantize(transaction_gross * visma_rate, currency)
    return Settlement(currency=currency.upper(), transaction_currency=transaction_currency.upper(),
                      transaction_gross=transaction_gross, exchange_rate=exchange_rate, visma_rate=visma_rate,
                      gross=gross, fee=fee, net=net, exchange_difference=gross - fee - net)


def converted_within_rounding(*, amount: Decimal, converted: Decimal, rate: Decimal, currency: str) -> bool:
    """True when `converted` is `amount` × `rate` to within one minor unit of `currency` (the processor rounds)."""
    expected = quantize(amount * rate, currency)
    unit = Decimal(1).scaleb(expected.as_tuple().exponent)
    return abs(expected - converted) <= unit


__all__ = ["Settlement", "converted_within_rounding", "settlement_valued", "visma_exchange_rate"]
