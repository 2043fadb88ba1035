"""The emulated Visma company's currency settings: its base currency, and which reading of the `…InCurrency` twins it
renders on a customer invoice (both switchable, shared by every process)."""
from __future__ import annotations

from .models import VismaSetting

BASE_CURRENCY_SETTING = "base_currency"
DEFAULT_BASE_CURRENCY = "SEK"

TWINS_SETTING = "invoice_amount_twins"
# CustomerInvoiceDto (swagger.json) is ambiguous about the twins:
# - "document": Acumatica's reading underneath (ARInvoice.CuryOrigDocAmt is the document currency, OrigDocAmt the
#   base), which Visma's journal lines follow (JournalTransactionLineDto.debitAmountInCurrency is written in the
#   transaction's currency): `amountInCurrency` = document currency, `amount` = base currency.
# - "base": the swagger's own text, `amountInCurrency` "Background calculation giving you the Amount in your default
#   currency": `amountInCurrency` = base currency, `amount` = document currency.
TWINS_DOCUMENT, TWINS_BASE = "document", "base"
TWINS_MODES = (TWINS_DOCUMENT, TWINS_BASE)
# The pairs a customer invoice's read DTO carries (CustomerInvoiceDto; lines: CustomerInvoiceLineDto).
INVOICE_TWINS = ("amount", "balance", "detailTotal", "vatTotal", "vatTaxableTotal", "vatExemptTotal")
INVOICE_LINE_TWINS = ("amount", "unitPrice")


def visma_base_currency() -> str:
    setting = VismaSetting.objects.filter(name=BASE_CURRENCY_SETTING).first()
    return setting.value if setting and setting.value else DEFAULT_BASE_CURRENCY


def visma_base_currency_set(currency: str) -> str:
    code = str(currency or "").upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"currency must be a three-letter code, not {currency!r}")
    VismaSetting.objects.update_or_create(name=BASE_CURRENCY_SETTING, defaults={"value": code})
    return code


def visma_twins_mode() -> str:
    """Which reading of the twins invoices are rendered in: "document" (default) or "base"."""
    setting = VismaSetting.objects.filter(name=TWINS_SETTING).first()
    return setting.value if setting and setting.value in TWINS_MODES else TWINS_DOCUMENT


def visma_twins_mode_set(mode: str) -> str:
    if mode not in TWINS_MODES:
        raise ValueError(f"mode must be one of {', '.join(TWINS_MODES)}, not {mode!r}")
    VismaSetting.objects.update_or_create(name=TWINS_SETTING, defaults={"value": mode})
    return mode


def _swap(body: dict, names: tuple[str, ...]) -> None:
    for name in names:
        twin = f"{name}InCurrency"
        if name in body and twin in body:
            body[name], body[twin] = body[twin], body[name]


def visma_invoice_twins_render(body: dict) -> dict:
    """A customer invoice's read DTO in the switched reading. It is stored in the "document" reading (the write DTO's
    `unitPriceInCurrency` is in the document currency); under "base" each twin pair is swapped."""
    if visma_twins_mode() != TWINS_BASE:
        return body
    rendered = dict(body)
    _swap(rendered, INVOICE_TWINS)
    lines = []
    for line in rendered.get("invoiceLines") or []:
        line = dict(line)
        _swap(line, INVOICE_LINE_TWINS)
        lines.append(line)
    if "invoiceLines" in rendered:
        rendered["invoiceLines"] = lines
    return rendered
