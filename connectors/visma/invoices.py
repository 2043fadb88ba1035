"""A Visma customer invoice's figures (net, VAT, total, balance, lines) in its document currency, read from
CustomerInvoiceDto whichever currency its `…InCurrency` twins hold."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from connectors.pipeline import SourceDataError
from mappings.money import MoneyError, minor_units

from .client import VismaClient
from .reference import visma_vat_rate_read

# CustomerInvoiceDto (swagger.json): `amount` is the document total including VAT, `detailTotal` the lines' total,
# `vatTotal` the VAT, `balance` what is still open; each has an `…InCurrency` twin. The swagger says the twin is "the
# Amount in your default currency" (base currency); Acumatica's Cury… fields underneath, and Visma's journal lines
# (`debitAmountInCurrency` in the transaction's currency), say the twin is in the document currency. So which of a
# pair is the document currency is decided per invoice, from its currencyId and exchangeRate (docs/visma-invoices.md).
TOTALS = ("detailTotal", "vatTotal", "amount", "balance")
DOCUMENT, BASE = "document", "base"


@dataclass(frozen=True)
class VismaInvoiceLine:
    """One invoice line: its text, its net amount in the document currency, its VAT code (None: no VAT code)."""

    line_number: int | None
    description: str
    net: Decimal
    vat_code: str | None


@dataclass(frozen=True)
class VismaInvoiceFigures:
    """A customer invoice's figures in its document currency; `twins` says which reading its DTO used: "document"
    (`…InCurrency` is the document currency), "base" (`…InCurrency` is the base currency), or "same" (a document in
    the base currency, where both agree)."""

    number: str
    currency: str
    net: Decimal
    vat: Decimal
    total: Decimal
    balance: Decimal
    lines: tuple[VismaInvoiceLine, ...]
    twins: str


def _figure(invoice: Mapping, name: str, number: str) -> Decimal | None:
    value = invoice.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise SourceDataError(f"Visma invoice {number}: {name} {value!r} is not an amount")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise SourceDataError(f"Visma invoice {number}: {name} {value!r} is not an amount") from None
    if not amount.is_finite():
        raise SourceDataError(f"Visma invoice {number}: {name} {value!r} is not an amount")
    return amount


def _unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _fits(document: Decimal, base: Decimal, rate: Decimal, base_currency: str, slack: int) -> bool:
    """Whether `base` is `document` × `rate` within rounding: half a base-currency unit per rounded part."""
    return abs(document * rate - base) <= _unit(base_currency) * slack / 2


def _pairs(owner: Mapping, names: tuple[str, ...], number: str, where: str = "") -> list[tuple[str, Decimal, Decimal]]:
    pairs = []
    for name in names:
        plain, twin = _figure(owner, name, number), _figure(owner, f"{name}InCurrency", number)
        if plain is None and twin is None:
            continue
        pairs.append((f"{where}{name}", plain if plain is not None else twin, twin if twin is not None else plain))
    return pairs


def visma_invoice_twins(invoice: Mapping, *, base_currency: str) -> str:
    """Which reading of the twins this invoice's DTO is in: "same" for a document in the base currency (the pairs
    must agree), else "document" or "base", the one every pair (header and lines) fits with the exchange rate;
    SourceDataError naming the invoice and the fields when none fits or both fit with different figures."""
    number = str(invoice.get("referenceNumber") or "?")
    currency = str(invoice.get("currencyId") or "").upper()
    base_currency = str(base_currency or "").upper()
    if not currency:
        raise SourceDataError(f"Visma invoice {number} has no currencyId")
    if not base_currency:
        raise SourceDataError(f"Visma invoice {number}: the company's base currency is not known")
    try:
        minor_units(currency), minor_units(base_currency)
    except MoneyError as exc:
        raise SourceDataError(f"Visma invoice {number}: {exc}") from None
    lines = invoice.get("invoiceLines") or []
    pairs = _pairs(invoice, TOTALS, number)
    for index, line in enumerate(lines):
        pairs += _pairs(line, ("amount",), number, where=f"invoiceLines[{index}].")
    if currency == base_currency:
        differing = [f"{name} {plain} / {name}InCurrency {twin}" for name, plain, twin in pairs if plain != twin]
        if differing:
            raise SourceDataError(f"Visma invoice {number} is in the base currency {currency}, but its twins differ "
                                  f"({'; '.join(differing)}): refusing to guess which is right")
        return "same"
    rate = _figure(invoice, "exchangeRate", number)
    if rate is None or rate <= 0:
        raise SourceDataError(f"Visma invoice {number} is in {currency} (base currency {base_currency}) with "
                              f"exchangeRate {invoice.get('exchangeRate')!r}: its figures cannot be told apart")
    # A header total is rounded once per line and VAT code at most: that many half units of slack.
    slack = len(lines) + 2
    readings = []
    if all(_fits(twin, plain, rate, base_currency, slack) for _name, plain, twin in pairs):
        readings.append(DOCUMENT)
    if all(_fits(plain, twin, rate, base_currency, slack) for _name, plain, twin in pairs):
        readings.append(BASE)
    if len(readings) == 1:
        return readings[0]
    if readings and all(plain == twin for _name, plain, twin in pairs):
        return DOCUMENT
    shown = "; ".join(f"{name} {plain} / {name}InCurrency {twin}" for name, plain, twin in pairs if name in TOTALS)
    why = "fit the rate either way" if readings else "do not fit the rate either way"
    raise SourceDataError(f"Visma invoice {number} in {currency} (base currency {base_currency}, exchangeRate {rate}): "
                          f"its amounts {why} ({shown}): refusing to guess which is in {currency}")


def visma_invoice_figures(invoice: Mapping, *, base_currency: str) -> VismaInvoiceFigures:
    """Net (detailTotal), VAT (vatTotal), total (amount, VAT included) and balance of a Visma customer invoice, and
    its lines' net amounts, all in the document currency; SourceDataError when the twins cannot be told apart or the
    total is not the lines plus VAT."""
    number = str(invoice.get("referenceNumber") or "?")
    twins = visma_invoice_twins(invoice, base_currency=base_currency)
    currency = str(invoice["currencyId"]).upper()
    unit = _unit(currency)

    def document(owner: Mapping, name: str, *, required: bool = True, where: str = "") -> Decimal:
        field = f"{name}InCurrency" if twins in (DOCUMENT, "same") else name
        value = _figure(owner, field, number)
        if value is None:
            other = name if field != name else f"{name}InCurrency"
            value = _figure(owner, other, number) if twins == "same" else None
        if value is None:
            if required:
                raise SourceDataError(f"Visma invoice {number} has no {where}{field}")
            return Decimal(0).quantize(unit)
        exact = value.quantize(unit, rounding=ROUND_HALF_UP)
        if exact != value:
            raise SourceDataError(f"Visma invoice {number}: {where}{field} {value} has more decimals than {currency}")
        return exact

    net = document(invoice, "detailTotal")
    vat = document(invoice, "vatTotal", required=False)
    total = document(invoice, "amount")
    balance = document(invoice, "balance", required=False) if (invoice.get("balance") is not None or invoice.get(
        "balanceInCurrency") is not None) else total
    if total != net + vat:
        raise SourceDataError(f"Visma invoice {number}: amount {total} {currency} is not detailTotal {net} + vatTotal "
                              f"{vat}")
    lines = []
    for index, line in enumerate(invoice.get("invoiceLines") or []):
        code = line.get("vatCode")
        code = (code.get("id") if isinstance(code, Mapping) else code) or None
        lines.append(VismaInvoiceLine(
            line_number=line.get("lineNumber"), description=str(line.get("description") or ""),
            net=document(line, "amount", where=f"invoiceLines[{index}]."), vat_code=str(code) if code else None))
    if lines and sum((line.net for line in lines), Decimal(0)) != net:
        raise SourceDataError(f"Visma invoice {number}: its lines add up to {sum(line.net for line in lines)} "
                              f"{currency}, detailTotal is {net}")
    return VismaInvoiceFigures(number=number, currency=currency, net=net, vat=vat, total=total, balance=balance,
                               lines=tuple(lines), twins=twins)


def visma_vat_total(net_by_code: Mapping[str, Decimal], percent_by_code: Mapping[str, Decimal], currency: str) -> Decimal:
    """The VAT Visma puts on a customer invoice: per VAT code, the code's rate on the total of the lines carrying it,
    rounded half up to the currency's minor unit (Acumatica's tax engine rounds each tax of a document, not each
    line; half up is its default rounding — docs/visma-invoices.md)."""
    unit = _unit(currency)
    return sum(((net * percent_by_code[code] / 100).quantize(unit, rounding=ROUND_HALF_UP)
                for code, net in net_by_code.items()), Decimal(0).quantize(unit))


def visma_vat_of_lines(client: VismaClient, net_by_code: Mapping[str, Decimal], currency: str, day: date, *,
                       what: str) -> Decimal:
    """The VAT Visma will compute for a document we create: each VAT code's rate on its date (GET /v1/vat) on the
    lines carrying it (visma_vat_total); SourceDataError naming `what` when Visma has no rate for a code that day."""
    percents = {}
    for code in net_by_code:
        percent = visma_vat_rate_read(client, code, day)
        if percent is None:
            raise SourceDataError(f"{what}: Visma has no VAT code {code} with a rate on {day}")
        percents[code] = percent
    return visma_vat_total(net_by_code, percents, currency)
