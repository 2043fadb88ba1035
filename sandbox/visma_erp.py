"""The emulated Visma.net ERP company: write DTOs turned into read DTOs, the checks Visma makes, the general ledger."""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from .models import VismaDocument, VismaGLBalance
from .visma_periods import financial_period_require
from .visma_company import visma_base_currency
from .visma_store import (
    ListFilter,
    ListSpec,
    Page,
    VismaError,
    visma_date_format,
    visma_datetime_format,
    visma_document_create,
    visma_document_find,
    visma_document_get,
    visma_document_render,
    visma_document_update,
    visma_documents_query,
    visma_money,
    visma_now,
    visma_number_next,
    visma_page_window,
)

BRANCH = {"number": "1", "name": "Main branch"}
LEDGER = {"ledger": "ACTUAL", "ledgerDescription": "Actual ledger"}
# Fixed rates in SEK, so amounts in the base currency are predictable in tests; a company whose base currency is
# another (sandbox.visma_company, switch base-currency) converts through SEK.
CURRENCY_RATES = {
    "SEK": Decimal("1"),
    "EUR": Decimal("11.50"),
    "NOK": Decimal("0.98"),
    "DKK": Decimal("1.54"),
    "USD": Decimal("10.60"),
    "GBP": Decimal("13.40"),
    "JPY": Decimal("0.07"),
}
COUNTRIES = {
    "SE": "Sweden",
    "NO": "Norway",
    "DK": "Denmark",
    "FI": "Finland",
    "DE": "Germany",
    "NL": "Netherlands",
    "GB": "United Kingdom",
    "US": "United States",
    "IE": "Ireland",
    "LU": "Luxembourg",
}
PAYMENT_METHODS = {"BANK": "Bank transfer", "CARD": "Card", "PAYPAL": "PayPal", "STRIPE": "Stripe", "SQUARE": "Square"}
CREDIT_TERMS = {"30": "30 days net", "14": "14 days net", "0": "Due on receipt"}

# The first number each numbering sequence hands out.
SERIES_FIRST = {
    "customer": 10001,
    "supplier": 20001,
    "customer_invoice": 100001,
    "customer_payment": 200001,
    "customer_credit_note": 500001,
    "supplier_invoice": 300001,
    "supplier_payment": 400001,
    "journal": 1,
    "internal_id": 1,
}


def _value(dto: dict, name: str, default=None):
    """The scalar inside a write DTO's {"field": {"value": ...}} wrapper."""
    wrapped = dto.get(name)
    if isinstance(wrapped, dict) and wrapped.get("value") is not None:
        return wrapped["value"]
    return default


def _given(dto: dict, name: str) -> bool:
    return isinstance(dto.get(name), dict) and "value" in dto[name]


def _unwrap(node):
    """A nested write DTO with every {"value": x} wrapper replaced by x."""
    if isinstance(node, dict):
        if set(node) == {"value"}:
            return _unwrap(node["value"])
        return {key: _unwrap(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unwrap(item) for item in node]
    return node


def _amount(value: Decimal) -> float:
    # Visma's read DTOs carry amounts as JSON numbers (doubles).
    return float(value)


def _dto_datetime(dto: dict, name: str, default: datetime) -> datetime:
    text = _value(dto, name)
    if text is None:
        return default
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=default.tzinfo) if moment.tzinfo is None else moment


def _periods(company_id: str, dto: dict, moment: datetime, where: str, ledger: str) -> tuple[str, str]:
    """(financialPeriod YYYYPP, postPeriod PPYYYY) from the DTO, else the company's period of the document date;
    refused when the company's calendar has no such period or it is not open in the document's ledger
    (FinancialPeriodDto: active, closedIn…; sandbox.visma_periods)."""
    financial = _value(dto, "financialPeriod")
    post = _value(dto, "postPeriod")
    if financial is None and post is not None:
        if len(post) != 6 or not post.isdigit():
            raise VismaError.invalid(f"{where}postPeriod: '{post}' is not a period in the format MMYYYY.")
        financial = post[2:] + post[:2]
    financial = financial_period_require(company_id, financial, moment.date(), ledger, f"{where}financialPeriod")
    return financial, financial[4:] + financial[:4]


RATES_EFFECTIVE = "2020-01-01T00:00:00"


def visma_currency_rates(*, from_currency: str | None = None, to_currency: str | None = None) -> list[dict]:
    """The company's rates as CurrencyRateDto rows (swagger: rate, effectiveDate, multDiv "Multiply": one unit of
    fromCurrencyId is `rate` toCurrencyId), each currency to the base currency; the fixed CURRENCY_RATES since 2020."""
    rows = []
    base = visma_base_currency()
    for index, currency in enumerate(sorted(CURRENCY_RATES), start=1):
        if currency == base or (from_currency and from_currency != currency) or (to_currency and to_currency != base):
            continue
        # Through SEK, as _currency converts: one unit of `currency` in the company's base currency.
        rate = (CURRENCY_RATES[currency] / CURRENCY_RATES[base]).quantize(Decimal("0.000001"))
        rows.append({"id": index, "fromCurrencyId": currency, "toCurrencyId": base, "rateType": "SPOT",
                     "rate": float(rate), "effectiveDate": RATES_EFFECTIVE, "multDiv": "Multiply",
                     "rateReciprocal": float((1 / rate).quantize(Decimal("0.00000001")))})
    return rows


def _currency(dto: dict, field_name: str, default: str) -> tuple[str, Decimal]:
    currency = _value(dto, field_name, default)
    if currency not in CURRENCY_RATES:
        raise VismaError.invalid(f"{field_name}: Currency '{currency}' does not exist.")
    rate = _value(dto, "exchangeRate")
    if rate:
        return currency, Decimal(str(rate))
    return currency, (CURRENCY_RATES[currency] / CURRENCY_RATES[visma_base_currency()]).quantize(Decimal("0.000001"))


def _internal_id(company_id: str) -> int:
    return visma_number_next(company_id, "internal_id", first=SERIES_FIRST["internal_id"])


def _number_new(company_id: str, series: str, collection: str, *, width: int = 0, key_suffix: bool = False) -> str:
    """The next free number of a sequence (numbers a caller chose itself are skipped).

    `key_suffix`: the number ends the key (supplier invoices are keyed documentType/number).
    """
    while True:
        number = visma_number_next(company_id, series, first=SERIES_FIRST[series])
        text = f"{number:0{width}d}" if width else str(number)
        documents = VismaDocument.objects.filter(company_id=company_id, collection=collection)
        taken = documents.filter(key__endswith=f"/{text}") if key_suffix else documents.filter(key=text)
        if not taken.exists():
            return text


# Reference data ---------------------------------------------------------------------------------------------


def gl_account_require(company_id: str, account_cd: str | None, where: str) -> dict:
    """The account's read DTO; a missing or inactive account is refused as Visma refuses it."""
    if not account_cd:
        raise VismaError.invalid(f"{where}accountNumber: 'Account' cannot be empty.")
    document = visma_document_find(company_id, "account", account_cd)
    if document is None:
        raise VismaError.invalid(f"{where}accountNumber: Account '{account_cd}' cannot be found in the system.")
    if not document.body.get("active"):
        raise VismaError.invalid(f"{where}accountNumber: Account '{account_cd}' is inactive.")
    return document.body


def subaccount_resolve(company_id: str, segments: list[dict] | None, where: str) -> dict | None:
    """The read subaccount for the segments a line names; each must be an existing, active segment value."""
    if not segments:
        return None
    dimension = visma_document_find(company_id, "dimension", "SUBACCOUNT")
    defined = {segment["segmentId"]: segment for segment in (dimension.body["segments"] if dimension else [])}
    read_segments = []
    seen: set[int] = set()
    for segment in sorted(segments, key=lambda segment: segment.get("segmentId") or 0):
        segment_id = segment.get("segmentId")
        value_id = segment.get("segmentValue")
        definition = defined.get(segment_id)
        if definition is None:
            raise VismaError.invalid(f"{where}subaccount: Segment {segment_id} of dimension SUBACCOUNT does not exist.")
        if segment_id in seen:
            raise VismaError.invalid(f"{where}subaccount: Segment {segment_id} is given twice.")
        seen.add(segment_id)
        value = next((item for item in definition["segmentValues"] if item["valueId"] == value_id), None)
        if value is None:
            raise VismaError.invalid(
                f"{where}subaccount: '{value_id}' is not a value of segment {segment_id} ({definition['description']})."
            )
        if not value["active"]:
            raise VismaError.invalid(
                f"{where}subaccount: Value '{value_id}' of segment {segment_id} ({definition['description']}) "
                "is inactive."
            )
        read_segments.append(
            {
                "segmentId": segment_id,
                "segmentDescription": definition["description"],
                "segmentValue": value_id,
                "segmentValueDescription": value["description"],
            }
        )
    number = "-".join(segment["segmentValue"] for segment in read_segments)
    known = visma_document_find(company_id, "subaccount", number)
    return {
        "subaccountNumber": number,
        "subaccountId": known.body["subaccountId"] if known else None,
        "description": " / ".join(segment["segmentValueDescription"] for segment in read_segments),
        "active": True,
        "segments": read_segments,
    }


def _address(update: dict | None, current: dict | None = None) -> dict:
    address = dict(current or {})
    for key, value in (_unwrap(update) or {}).items():
        if key == "countryId":
            address["country"] = {"id": value, "name": COUNTRIES.get(value, value)} if value else None
        elif key == "county":
            address["county"] = {"id": value, "name": value} if value else None
        else:
            address[key] = value
    return address


def _contact(update: dict | None, current: dict | None = None) -> dict:
    return {**(current or {}), **(_unwrap(update) or {})}


def _coded(code: str | None, names: dict[str, str]) -> dict | None:
    return {"id": code, "description": names.get(code, code)} if code else None


# Customers and suppliers ------------------------------------------------------------------------------------

CUSTOMER_SCALARS = ("name", "status", "accountReference", "currencyId", "vatRegistrationId", "corporateId", "gln")
PARTY_NESTED = {"mainAddress": _address, "invoiceAddress": _address, "deliveryAddress": _address,
                "remitAddress": _address, "supplierAddress": _address,
                "mainContact": _contact, "invoiceContact": _contact, "deliveryContact": _contact,
                "remitContact": _contact, "supplierContact": _contact}


def _party_apply(body: dict, dto: dict, scalars: tuple[str, ...]) -> dict:
    for name in scalars:
        if _given(dto, name):
            body[name] = dto[name]["value"]
    for name, convert in PARTY_NESTED.items():
        if name in dto:
            body[name] = convert(dto[name], body.get(name))
    if "attributeLines" in dto:
        body["attributes"] = [
            {"id": _unwrap(line.get("attributeId")), "value": _unwrap(line.get("attributeValue")), "description": None}
            for line in dto["attributeLines"]
        ]
    if _given(dto, "creditTermsId"):
        body["creditTerms"] = _coded(_value(dto, "creditTermsId"), CREDIT_TERMS)
    if _given(dto, "vatZoneId"):
        body["vatZone"] = _coded(_value(dto, "vatZoneId"), {})
    if body.get("name") in (None, ""):
        raise VismaError.invalid("name: 'Name' cannot be empty.")
    return body


def customer_body(dto: dict, *, number: str, internal_id: int, created: datetime) -> dict:
    body = {
        "internalId": internal_id,
        "number": number,
        "name": None,
        "status": "Active",
        "mainAddress": {},
        "mainContact": {},
        "accountReference": None,
        "customerClass": {"id": "STANDARD", "description": "Standard customers"},
        "creditTerms": _coded("30", CREDIT_TERMS),
        "currencyId": visma_base_currency(),
        "vatRegistrationId": None,
        "corporateId": None,
        "attributes": [],
        "createdDateTime": visma_datetime_format(created),
    }
    return _customer_apply(body, dto)


def _customer_apply(body: dict, dto: dict) -> dict:
    if _given(dto, "customerClassId"):
        body["customerClass"] = _coded(_value(dto, "customerClassId"), {})
    return _party_apply(body, dto, CUSTOMER_SCALARS)


def _party_create(company_id: str, collection: str, label: str, dto: dict, body_for, at: datetime | None):
    """A customer or supplier: the number given (overrideNumberSeries) or the next of its series."""
    moment = at or visma_now()
    number = _value(dto, "number") or _number_new(company_id, collection, collection)
    body = body_for(dto, number=number, internal_id=_internal_id(company_id), created=moment)
    return visma_document_create(company_id, collection, number, body, label=label, at=moment)


def customer_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    return _party_create(company_id, "customer", "Customer", dto, customer_body, at)


def customer_update(company_id: str, number: str, dto: dict, *, if_match: str | None) -> VismaDocument:
    return visma_document_update(
        company_id, "customer", number, lambda body: _customer_apply(body, dto), label="Customer", if_match=if_match
    )


SUPPLIER_SCALARS = CUSTOMER_SCALARS + ("cashAccount", "note")


def supplier_body(dto: dict, *, number: str, internal_id: int, created: datetime) -> dict:
    body = {
        "internalId": internal_id,
        "number": number,
        "name": None,
        "status": "Active",
        "mainAddress": {},
        "mainContact": {},
        "accountReference": None,
        "supplierClass": {"id": "STANDARD", "description": "Standard suppliers"},
        "creditTerms": _coded("30", CREDIT_TERMS),
        "currencyId": visma_base_currency(),
        "paymentMethod": _coded("BANK", PAYMENT_METHODS),
        "cashAccount": "1920",
        "vatRegistrationId": None,
        "corporateId": None,
        "attributes": [],
        "note": None,
    }
    return _supplier_apply(body, dto)


def _supplier_apply(body: dict, dto: dict) -> dict:
    if _given(dto, "supplierClassId"):
        body["supplierClass"] = _coded(_value(dto, "supplierClassId"), {})
    if _given(dto, "paymentMethodId"):
        body["paymentMethod"] = _coded(_value(dto, "paymentMethodId"), PAYMENT_METHODS)
    return _party_apply(body, dto, SUPPLIER_SCALARS)


def supplier_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    return _party_create(company_id, "supplier", "Supplier", dto, supplier_body, at)


def supplier_update(company_id: str, number: str, dto: dict, *, if_match: str | None) -> VismaDocument:
    return visma_document_update(
        company_id, "supplier", number, lambda body: _supplier_apply(body, dto), label="Supplier", if_match=if_match
    )


def _party_require(company_id: str, collection: str, number: str | None, label: str, field_name: str) -> dict:
    if not number:
        raise VismaError.invalid(f"{field_name}: '{label}' cannot be empty.")
    document = visma_document_find(company_id, collection, number)
    if document is None:
        raise VismaError.invalid(f"{field_name}: {label} '{number}' cannot be found in the system.")
    if document.body.get("status") == "Inactive":
        raise VismaError.invalid(f"{field_name}: {label} '{number}' is inactive.")
    return document.body


# Document lines ----------------------------------------------------------------------------------------------


def _lines_apply(current: list[dict], updates: list[dict], build, where: str) -> list[dict]:
    """Visma's line operations: Insert appends, Update and Delete address an existing lineNumber."""
    lines = [dict(line) for line in current]
    for index, update in enumerate(updates):
        operation = update.get("operation") or "Insert"
        line_where = f"{where}[{index}]."
        if operation == "Insert":
            number = max((line["lineNumber"] for line in lines), default=0) + 1
            lines.append(build(update, number, None, line_where))
            continue
        number = _value(update, "lineNumber")
        position = next((i for i, line in enumerate(lines) if line["lineNumber"] == number), None)
        if position is None:
            raise VismaError.invalid(f"{line_where}lineNumber: Line {number} does not exist.")
        if operation == "Delete":
            del lines[position]
        else:
            lines[position] = build(update, number, lines[position], line_where)
    return lines


# Customer invoices -------------------------------------------------------------------------------------------

CUSTOMER_INVOICE_TEXTS = ("externalReference", "paymentReference", "customerRefNumber", "invoiceText", "note")


def _customer_invoice_line(company_id: str, rate: Decimal):
    def build(update: dict, number: int, current: dict | None, where: str) -> dict:
        line = dict(current or {"lineNumber": number, "quantity": 1.0, "unitPriceInCurrency": 0.0,
                                 "manualAmountInCurrency": None, "discountAmountInCurrency": 0.0})
        for name in ("inventoryNumber", "description", "uom", "note"):
            if _given(update, name):
                line[name] = update[name]["value"]
        for name in ("quantity", "unitPriceInCurrency", "manualAmountInCurrency", "discountAmountInCurrency",
                     "discountPercent"):
            if _given(update, name):
                line[name] = update[name]["value"]
        account_cd = _value(update, "accountNumber", (current or {}).get("account", {}).get("number") or "3000")
        account = gl_account_require(company_id, account_cd, where)
        line["account"] = {"number": account_cd, "description": account["description"], "type": account["type"],
                           "active": True}
        if "subaccount" in update:
            line["subaccount"] = subaccount_resolve(company_id, update["subaccount"], where)
        if _given(update, "vatCodeId"):
            vat_code = _value(update, "vatCodeId")
            line["vatCode"] = {"id": vat_code, "description": vat_code_require(company_id, vat_code, where)[
                "description"]} if vat_code else None
        if line.get("manualAmountInCurrency") is not None:
            amount = visma_money(line["manualAmountInCurrency"])
        else:
            amount = visma_money(Decimal(str(line["quantity"])) * Decimal(str(line["unitPriceInCurrency"])))
            amount -= visma_money(line.get("discountAmountInCurrency"))
        line["amountInCurrency"] = _amount(amount)
        line["amount"] = _amount(visma_money(amount * rate))
        line["unitPrice"] = _amount(visma_money(Decimal(str(line["unitPriceInCurrency"])) * rate))
        line["branchNumber"] = BRANCH
        return line

    return build


def vat_code_require(company_id: str, vat_id: str, where: str) -> dict:
    """The VAT code's read DTO (VatInformationDto); one Visma lacks is refused."""
    document = visma_document_find(company_id, "vat", vat_id)
    if document is None:
        raise VismaError.invalid(f"{where}vatCodeId: VAT '{vat_id}' cannot be found in the system.")
    return document.body


def vat_rate_on(vat: dict, day: str) -> Decimal:
    """The VAT rate (%) in effect on `day` (YYYY-MM-DD): the schedule row with the latest startDate not after it
    (VatInformationDto.schedules, VatInformationScheduleDto.startDate / vatRate)."""
    effective = [row for row in vat.get("schedules") or [] if str(row.get("startDate") or "")[:10] <= day[:10]]
    if not effective:
        return Decimal("0")
    return Decimal(str(max(effective, key=lambda row: str(row["startDate"]))["vatRate"]))


def _customer_invoice_totals(company_id: str, body: dict, *, lines_key: str = "invoiceLines") -> dict:
    """The document's totals as CustomerInvoiceDto describes them: detailTotal the lines' total, vatTotal the VAT
    (per VAT code: the code's rate on the lines' taxable total of that code, rounded to the cent half up, as
    Acumatica's tax engine rounds a TaxTran), amount = detailTotal + vatTotal, balance what is left of amount; each
    in the document currency and in the base currency (document × exchangeRate, rounded). Stored in the "document"
    reading of the twins (`…InCurrency` = document currency); sandbox.visma_company renders the other on request."""
    rate = Decimal(str(body["exchangeRate"]))
    day = str(body.get("documentDate") or "")[:10]
    detail = sum((visma_money(line["amountInCurrency"]) for line in body[lines_key]), Decimal("0.00"))
    detail_base = sum((visma_money(line["amount"]) for line in body[lines_key]), Decimal("0.00"))
    taxable_by_code: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for line in body[lines_key]:
        if line.get("vatCode"):
            taxable_by_code[line["vatCode"]["id"]] += visma_money(line["amountInCurrency"])
    vat = vat_base = taxable = exempt = Decimal("0.00")
    for vat_id, base in sorted(taxable_by_code.items()):
        code = vat_code_require(company_id, vat_id, f"{lines_key}.")
        code_vat = visma_money(base * vat_rate_on(code, day) / 100)
        vat += code_vat
        vat_base += visma_money(code_vat * rate)
        if code.get("includeinVatExemptTotal"):
            exempt += base
        elif code.get("includeinVatTotal", True):
            taxable += base
    total, total_base = detail + vat, detail_base + vat_base
    applied = visma_money(body.get("amountInCurrency", 0)) - visma_money(body.get("balanceInCurrency", 0))
    balance = total - applied
    body["detailTotalInCurrency"], body["detailTotal"] = _amount(detail), _amount(detail_base)
    body["vatTotalInCurrency"], body["vatTotal"] = _amount(vat), _amount(vat_base)
    body["vatTaxableTotalInCurrency"], body["vatTaxableTotal"] = _amount(taxable), _amount(visma_money(taxable * rate))
    body["vatExemptTotalInCurrency"], body["vatExemptTotal"] = _amount(exempt), _amount(visma_money(exempt * rate))
    body["amountInCurrency"], body["amount"] = _amount(total), _amount(total_base)
    body["balanceInCurrency"] = _amount(balance)
    body["balance"] = _amount(total_base if balance == total else visma_money(balance * rate))
    return body


def _customer_invoice_apply(company_id: str, body: dict, dto: dict) -> dict:
    for name in CUSTOMER_INVOICE_TEXTS:
        if _given(dto, name):
            body[name] = dto[name]["value"]
    if _given(dto, "hold"):
        body["hold"] = bool(_value(dto, "hold", False))
        if body["status"] in ("Hold", "Balanced"):
            body["status"] = "Hold" if body["hold"] else "Balanced"
    if _given(dto, "documentDueDate"):
        body["documentDueDate"] = visma_date_format(_dto_datetime(dto, "documentDueDate", visma_now()))
    if _given(dto, "paymentMethodId"):
        body["paymentMethod"] = _coded(_value(dto, "paymentMethodId"), PAYMENT_METHODS)
    if _given(dto, "creditTermsId"):
        body["creditTerms"] = _coded(_value(dto, "creditTermsId"), CREDIT_TERMS)
    if "invoiceLines" in dto:
        rate = Decimal(str(body["exchangeRate"]))
        body["invoiceLines"] = _lines_apply(
            body["invoiceLines"], dto["invoiceLines"], _customer_invoice_line(company_id, rate), "invoiceLines"
        )
    return _customer_invoice_totals(company_id, body)


def _customer_document_start(company_id: str, dto: dict, moment: datetime, *, document_type: str, lines_key: str,
                             series: str) -> tuple[dict, dict, Decimal]:
    """What a new customer invoice and a new credit note both begin with (CustomerInvoiceDto, CustomerCreditNoteDto):
    the customer checked, only inserted lines, the date, Visma's period (AR), the currency and rate, the number (the
    caller's own with overrideNumberSeries, else the next of the series) and hold. Returns (body, customer, rate)."""
    customer_number = _value(dto, "customerNumber")
    customer = _party_require(company_id, "customer", customer_number, "Customer", "customerNumber")
    for index, line in enumerate(dto.get(lines_key, [])):
        if (line.get("operation") or "Insert") != "Insert":
            raise VismaError.invalid(f"{lines_key}[{index}].operation: a new document can only insert lines.")
    document_date = _dto_datetime(dto, "documentDate", moment)
    financial_period, post_period = _periods(company_id, dto, document_date, "", "AR")
    currency, rate = _currency(dto, "currencyId", customer.get("currencyId") or visma_base_currency())
    reference = _value(dto, "referenceNumber") if _value(dto, "overrideNumberSeries") else None
    hold = bool(_value(dto, "hold", False))
    body = {
        "documentType": document_type,
        "referenceNumber": reference or _number_new(company_id, series, series),
        "status": "Hold" if hold else "Balanced",
        "hold": hold,
        "customer": {"number": customer_number, "name": customer["name"]},
        "documentDate": visma_date_format(document_date),
        "financialPeriod": financial_period,
        "postPeriod": post_period,
        "currencyId": currency,
        "exchangeRate": float(rate),
        "branchNumber": BRANCH,
        "createdDateTime": visma_datetime_format(moment),
    }
    return body, customer, rate


def customer_invoice_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    moment = at or visma_now()
    body, customer, _rate = _customer_document_start(company_id, dto, moment, document_type="Invoice",
                                                     lines_key="invoiceLines", series="customer_invoice")
    body.update({
        "documentDueDate": visma_date_format(datetime.fromisoformat(body["documentDate"]) + timedelta(days=30)),
        "externalReference": None,
        "paymentReference": None,
        "customerRefNumber": None,
        "invoiceText": None,
        "note": None,
        "creditTerms": customer.get("creditTerms"),
        "paymentMethod": None,
        "invoiceLines": [],
        "amountInCurrency": 0.0,
        "balanceInCurrency": 0.0,
    })
    body = _customer_invoice_apply(company_id, body, dto)
    return visma_document_create(company_id, "customer_invoice", body["referenceNumber"], body, label="Invoice",
                                 at=moment)


def customer_invoice_update(company_id: str, number: str, dto: dict, *, if_match: str | None) -> VismaDocument:
    if _given(dto, "customerNumber"):
        _party_require(company_id, "customer", _value(dto, "customerNumber"), "Customer", "customerNumber")
    return visma_document_update(
        company_id,
        "customer_invoice",
        number,
        lambda body: _customer_invoice_apply(company_id, body, dto),
        label="Invoice",
        if_match=if_match,
    )


# Customer credit notes ---------------------------------------------------------------------------------------
# POST /v2/customerCreditNote (CustomerCreditNoteUpdateDto: customerNumber, documentDate, currencyId,
# externalReference, customerRefNumber, invoiceText, lines[] as CustomerCreditNoteLineUpdateDto), read back at
# GET /v1/customerCreditNote/{creditNoteNumber} as CustomerCreditNoteDto (documentType CreditNote, amount, balance,
# lines). Its own document type and numbering series (ARRegister is keyed by DocType and RefNbr).


def customer_credit_note_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    moment = at or visma_now()
    if not dto.get("lines"):
        raise VismaError.invalid("lines: a credit note needs at least one line.")
    body, _customer, rate = _customer_document_start(company_id, dto, moment, document_type="CreditNote",
                                                     lines_key="lines", series="customer_credit_note")
    body["applications"] = []
    for name in CUSTOMER_INVOICE_TEXTS:
        body[name] = _value(dto, name)
    body["lines"] = _lines_apply([], dto["lines"], _customer_invoice_line(company_id, rate), "lines")
    # CustomerCreditNoteDto carries the same totals as an invoice (detailTotal, vatTotal, amount with VAT, balance,
    # each with its twin), its lines under `lines` (swagger): computed per VAT code the same way.
    body = _customer_invoice_totals(company_id, body, lines_key="lines")
    return visma_document_create(company_id, "customer_credit_note", body["referenceNumber"], body,
                                 label="Credit note", at=moment)


# The collection each customer document type a payment line names lives in (PaymentLineUpdateDto.documentType).
CUSTOMER_DOCUMENT_COLLECTIONS = {"Invoice": "customer_invoice", "CreditNote": "customer_credit_note"}
# Which document types each payment type may be applied to (Visma's customer payment screen AR302000: a Refund pays
# out a credit note or an unapplied payment; a Payment settles invoices and debit notes).
PAYMENT_APPLIES_TO = {"Payment": ("Invoice", "DebitNote"), "Refund": ("CreditNote", "Payment", "Prepayment")}


# Customer payments -------------------------------------------------------------------------------------------


def customer_payment_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    moment = at or visma_now()
    customer_number = _value(dto, "customer")
    customer = _party_require(company_id, "customer", customer_number, "Customer", "customer")
    application_date = _dto_datetime(dto, "applicationDate", moment)
    period = financial_period_require(company_id, _value(dto, "applicationPeriod"), application_date.date(), "AR",
                                      "applicationPeriod")
    currency, _rate = _currency(dto, "currency", customer.get("currencyId") or visma_base_currency())
    cash_account = _value(dto, "cashAccount")
    if cash_account:
        gl_account_require(company_id, cash_account, "cashAccount.")
    lines = []
    applied = Decimal("0.00")
    payment_type = _value(dto, "type", "Payment")
    for index, line in enumerate(dto.get("paymentLines", [])):
        where = f"paymentLines[{index}]."
        if (line.get("operation") or "Insert") != "Insert":
            raise VismaError.invalid(f"{where}operation: a new payment can only insert lines.")
        document_type = _value(line, "documentType", "Invoice")
        reference = _value(line, "refNbr")
        if document_type not in PAYMENT_APPLIES_TO.get(payment_type, ()):
            raise VismaError.invalid(f"{where}documentType: a {payment_type} cannot be applied to documents of type "
                                     f"{document_type}.")
        collection = CUSTOMER_DOCUMENT_COLLECTIONS.get(document_type, "customer_invoice")
        invoice = visma_document_find(company_id, collection, reference or "")
        if invoice is None or invoice.body["documentType"] != document_type:
            raise VismaError.invalid(f"{where}refNbr: {document_type} '{reference}' cannot be found in the system.")
        if invoice.body["customer"]["number"] != customer_number:
            raise VismaError.invalid(f"{where}refNbr: {document_type} '{reference}' belongs to another customer.")
        if invoice.body.get("status") != "Open":
            # Only a released, open document takes an application (Acumatica ARPayment: applications are to
            # released documents with a balance).
            raise VismaError.invalid(f"{where}refNbr: {document_type} '{reference}' is {invoice.body.get('status')}: "
                                     "only an open (released) document can be applied.")
        amount_paid = visma_money(_value(line, "amountPaid", invoice.body["balanceInCurrency"]))
        if amount_paid > visma_money(invoice.body["balanceInCurrency"]):
            raise VismaError.invalid(
                f"{where}amountPaid: {amount_paid} exceeds the balance {invoice.body['balanceInCurrency']:.2f} "
                f"of {document_type} '{reference}'."
            )
        applied += amount_paid
        lines.append(
            {
                "documentType": document_type,
                "refNbr": reference,
                "amountPaid": _amount(amount_paid),
                "cashDiscountTaken": _value(line, "cashDiscountTaken", 0.0),
                "balanceWriteOff": _value(line, "balanceWriteOff", 0.0),
                "writeOffReasonCode": _value(line, "writeOffReasonCode"),
            }
        )
    payment_amount = visma_money(_value(dto, "paymentAmount", applied))
    reference = _value(dto, "referenceNumber") if _value(dto, "overrideNumberSeries") else None
    if not reference:
        reference = _number_new(company_id, "customer_payment", "customer_payment", width=6)
    hold = bool(_value(dto, "hold", False))
    body = {
        "type": payment_type,
        "refNbr": reference,
        "status": "Hold" if hold else "Balanced",
        "hold": hold,
        "applicationDate": visma_date_format(application_date),
        "applicationPeriod": period,
        "paymentRef": _value(dto, "paymentRef"),
        "customer": {"number": customer_number, "name": customer["name"]},
        "paymentMethod": _coded(_value(dto, "paymentMethod"), PAYMENT_METHODS),
        "cashAccount": cash_account,
        "currency": currency,
        "paymentAmount": _amount(payment_amount),
        "paymentAmountInCurrency": _amount(payment_amount),
        "invoiceText": _value(dto, "invoiceText"),
        "appliedToDocuments": _amount(applied),
        "availableBalance": _amount(payment_amount - applied),
        "availableBalanceInCurrency": _amount(payment_amount - applied),
        "branch": _value(dto, "branch", BRANCH["number"]),
        "paymentLines": lines,
    }
    # The applications lower the applied documents' balances only at release (customer_payment_release).
    return visma_document_create(company_id, "customer_payment", reference, body, label="Payment", at=moment)


# Supplier invoices and payments ------------------------------------------------------------------------------


def _supplier_invoice_line(company_id: str, rate: Decimal):
    def build(update: dict, number: int, current: dict | None, where: str) -> dict:
        line = dict(current or {"lineNumber": number, "quantity": 1.0, "unitCostInCurrency": 0.0,
                                 "costInCurrency": None})
        for name in ("inventoryNumber", "transactionDescription", "uom", "note", "quantity", "unitCostInCurrency",
                     "costInCurrency"):
            if _given(update, name):
                line[name] = update[name]["value"]
        account_cd = _value(update, "accountNumber", (current or {}).get("account", {}).get("number"))
        account = gl_account_require(company_id, account_cd, where)
        line["account"] = {"number": account_cd, "description": account["description"], "type": account["type"]}
        if "subaccount" in update:
            line["subaccount"] = subaccount_resolve(company_id, update["subaccount"], where)
        if _given(update, "vatCodeId"):
            line["vatCode"] = {"id": _value(update, "vatCodeId"), "description": None}
        if line.get("costInCurrency") is None:
            line["costInCurrency"] = _amount(
                visma_money(Decimal(str(line["quantity"])) * Decimal(str(line["unitCostInCurrency"])))
            )
        line["cost"] = _amount(visma_money(Decimal(str(line["costInCurrency"])) * rate))
        line["branchNumber"] = BRANCH
        return line

    return build


def supplier_invoice_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    moment = at or visma_now()
    supplier_number = _value(dto, "supplierNumber")
    supplier = _party_require(company_id, "supplier", supplier_number, "Supplier", "supplierNumber")
    document_type = _value(dto, "documentType", "Invoice")
    document_date = _dto_datetime(dto, "date", moment)
    financial_period, post_period = _periods(company_id, dto, document_date, "", "AP")
    currency, rate = _currency(dto, "currencyId", supplier.get("currencyId") or visma_base_currency())
    for index, line in enumerate(dto.get("invoiceLines", [])):
        if (line.get("operation") or "Insert") != "Insert":
            raise VismaError.invalid(f"invoiceLines[{index}].operation: a new invoice can only insert lines.")
    lines = _lines_apply([], dto.get("invoiceLines", []), _supplier_invoice_line(company_id, rate), "invoiceLines")
    detail_total = sum((visma_money(line["costInCurrency"]) for line in lines), Decimal("0.00"))
    vat_amount = visma_money(_value(dto, "vatAmount", 0))
    amount = visma_money(_value(dto, "amount", detail_total + vat_amount))
    reference = _value(dto, "referenceNumber") if _value(dto, "overrideNumberSeries") else None
    if not reference:
        reference = _number_new(company_id, "supplier_invoice", "supplier_invoice", key_suffix=True)
    hold = bool(_value(dto, "hold", False))
    body = {
        "documentType": document_type,
        "referenceNumber": reference,
        "status": "Hold" if hold else "Balanced",
        "hold": hold,
        "supplier": {"internalId": supplier["internalId"], "number": supplier_number, "name": supplier["name"]},
        "date": visma_date_format(document_date),
        "dueDate": visma_date_format(_dto_datetime(dto, "dueDate", document_date + timedelta(days=30))),
        "financialPeriod": financial_period,
        "postPeriod": post_period,
        "currencyId": currency,
        "exchangeRate": float(rate),
        "supplierReference": _value(dto, "supplierReference"),
        "description": _value(dto, "description"),
        "paymentRefNo": _value(dto, "paymentRefNo"),
        "note": _value(dto, "note"),
        "taxCalculationMode": _value(dto, "taxCalculationMode", "TaxSetting"),
        "invoiceLines": lines,
        "detailTotalInCurrency": _amount(detail_total),
        "detailTotal": _amount(visma_money(detail_total * rate)),
        "vatAmount": _amount(vat_amount),
        "amount": _amount(amount),
        "balance": _amount(amount),
        "balanceInCurrency": _amount(amount),
        "cashAccount": _value(dto, "cashAccount"),
        "paymentMethod": _coded(_value(dto, "paymentMethod"), PAYMENT_METHODS),
        "branchNumber": BRANCH,
        "createdDateTime": visma_datetime_format(moment),
    }
    key = f"{document_type}/{reference}"
    return visma_document_create(company_id, "supplier_invoice", key, body, label="Supplier invoice", at=moment)


def supplier_payment_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    moment = at or visma_now()
    supplier_number = _value(dto, "supplier")
    supplier = _party_require(company_id, "supplier", supplier_number, "Supplier", "supplier")
    application_date = _dto_datetime(dto, "applicationDate", moment)
    currency, _rate = _currency(dto, "currency", supplier.get("currencyId") or visma_base_currency())
    lines = []
    applied = Decimal("0.00")
    for index, line in enumerate(dto.get("paymentLines", [])):
        where = f"paymentLines[{index}]."
        document_type = _value(line, "documentType", "Invoice")
        reference = _value(line, "refNbr")
        invoice = visma_document_find(company_id, "supplier_invoice", f"{document_type}/{reference}")
        if invoice is None:
            raise VismaError.invalid(f"{where}refNbr: {document_type} '{reference}' cannot be found in the system.")
        if invoice.body["supplier"]["number"] != supplier_number:
            raise VismaError.invalid(f"{where}refNbr: {document_type} '{reference}' belongs to another supplier.")
        amount_paid = visma_money(_value(line, "amountPaid", invoice.body["balanceInCurrency"]))
        applied += amount_paid
        lines.append(
            {
                "docType": document_type,
                "invoiceRefNbr": reference,
                "amountPaid": _amount(amount_paid),
                "cashDiscountTaken": _value(line, "cashDiscountTaken", 0.0),
                "currency": currency,
                "supplierRef": invoice.body.get("supplierReference"),
            }
        )
    payment_amount = visma_money(_value(dto, "paymentAmount", applied))
    payment_type = _value(dto, "type", "Payment")
    reference = _value(dto, "referenceNumber") if _value(dto, "overrideNumberSeries") else None
    if not reference:
        reference = _number_new(company_id, "supplier_payment", "supplier_payment", width=6)
    hold = bool(_value(dto, "hold", False))
    body = {
        "type": payment_type,
        "documentType": payment_type,
        "refNbr": reference,
        "status": "Hold" if hold else "Balanced",
        "hold": hold,
        "applicationDate": visma_date_format(application_date),
        "applicationPeriod": financial_period_require(company_id, _value(dto, "applicationPeriod"),
                                                      application_date.date(), "AP", "applicationPeriod"),
        "paymentRef": _value(dto, "paymentRef"),
        "supplier": {"internalId": supplier["internalId"], "number": supplier_number, "name": supplier["name"]},
        "paymentMethod": _value(dto, "paymentMethod", "BANK"),
        "cashAccount": _value(dto, "cashAccount", supplier.get("cashAccount")),
        "currency": {"id": currency, "description": currency, "isBaseCurrency": currency == visma_base_currency()},
        "description": _value(dto, "description"),
        "paymentAmount": _amount(payment_amount),
        "appliedAmount": _amount(applied),
        "unappliedBalance": _amount(payment_amount - applied),
        "balance": _amount(payment_amount),
        "released": False,
        "branch": _value(dto, "branch", BRANCH["number"]),
        "paymentLines": lines,
    }
    return visma_document_create(company_id, "supplier_payment", reference, body, label="Supplier payment", at=moment)


# Journal transactions and the general ledger -----------------------------------------------------------------


def _journal_line(company_id: str, rate: Decimal, line_number: int, update: dict, where: str) -> dict:
    account_cd = _value(update, "accountNumber")
    account = gl_account_require(company_id, account_cd, where)
    if account.get("controlAccountModule") and not account.get("allowManualEntry", True):
        # AccountDto.controlAccountModule / allowManualEntry: only the ledger owning a control account posts to it.
        # (Visma's exact words are not published; the sense is Acumatica's control-account check.)
        raise VismaError.invalid(
            f"{where}accountNumber: Account '{account_cd}' is a control account of the "
            f"{account['controlAccountModule']} module and cannot be used in a journal transaction."
        )
    debit = visma_money(_value(update, "debitAmountInCurrency", 0))
    credit = visma_money(_value(update, "creditAmountInCurrency", 0))
    if debit < 0 or credit < 0:
        raise VismaError.invalid(f"{where}debitAmountInCurrency: amounts cannot be negative.")
    return {
        "lineNumber": line_number,
        "accountNumber": account_cd,
        "description": account["description"],
        "subaccount": subaccount_resolve(company_id, update.get("subaccount"), where),
        "referenceNumber": _value(update, "referenceNumber"),
        "transactionDescription": _value(update, "transactionDescription"),
        "debitAmountInCurrency": _amount(debit),
        "creditAmountInCurrency": _amount(credit),
        "debitAmount": _amount(visma_money(debit * rate)),
        "creditAmount": _amount(visma_money(credit * rate)),
        "branch": _value(update, "branch", BRANCH["number"]),
        "module": "ModuleGL",
        "uom": _value(update, "uom"),
        "quantity": _value(update, "quantity"),
        "note": _value(update, "note"),
        "vatCode": {"id": _value(update, "vatCodeId"), "description": None} if _given(update, "vatCodeId") else None,
        "project": {"id": _value(update, "project"), "description": None} if _given(update, "project") else None,
    }


def journal_create(company_id: str, dto: dict, *, at: datetime | None = None) -> VismaDocument:
    """Create a GL batch: every line on an active account and active segment values, debit equal to credit.

    A batch not on hold is released and posted at once (the company's "automatically release" preference);
    posting adds its lines to the GL balances in the same transaction.
    """
    moment = at or visma_now()
    updates = dto.get("journalTransactionLines") or []
    if not updates:
        raise VismaError.invalid("journalTransactionLines: a journal transaction needs at least one line.")
    transaction_date = _dto_datetime(dto, "transactionDate", moment)
    financial_period, post_period = _periods(company_id, dto, transaction_date, "", "GL")
    currency, rate = _currency(dto, "currencyId", visma_base_currency())
    lines = []
    for index, update in enumerate(updates):
        where = f"journalTransactionLines[{index}]."
        if (update.get("operation") or "Insert") != "Insert":
            raise VismaError.invalid(f"{where}operation: a new journal transaction can only insert lines.")
        lines.append(_journal_line(company_id, rate, index + 1, update, where))
    debit_total = sum((visma_money(line["debitAmountInCurrency"]) for line in lines), Decimal("0.00"))
    credit_total = sum((visma_money(line["creditAmountInCurrency"]) for line in lines), Decimal("0.00"))
    if debit_total != credit_total:
        raise VismaError.invalid(
            f"journalTransactionLines: The batch is out of balance: debit total {debit_total} {currency} "
            f"is not equal to credit total {credit_total} {currency}."
        )
    batch_number = _value(dto, "batchNumber") if _value(dto, "overrideNumberSeries") else None
    if not batch_number:
        batch_number = _number_new(company_id, "journal", "journal", width=6)
    hold = bool(_value(dto, "hold", False))
    body = {
        "module": "ModuleGL",
        "batchNumber": batch_number,
        "status": "Hold" if hold else "Posted",
        "hold": hold,
        "transactionDate": visma_date_format(transaction_date),
        "postPeriod": post_period,
        "financialPeriod": financial_period,
        **LEDGER,
        "currencyId": currency,
        "exchangeRate": float(rate),
        "autoReversing": bool(_value(dto, "autoReversing", False)),
        "reversingEntry": False,
        "description": _value(dto, "description"),
        "debitTotal": _amount(sum((visma_money(line["debitAmount"]) for line in lines), Decimal("0.00"))),
        "debitTotalInCurrency": _amount(debit_total),
        "creditTotal": _amount(sum((visma_money(line["creditAmount"]) for line in lines), Decimal("0.00"))),
        "creditTotalInCurrency": _amount(credit_total),
        "controlTotal": _amount(visma_money(debit_total * rate)),
        "controlTotalInCurrency": _amount(visma_money(_value(dto, "controlTotalInCurrency", debit_total))),
        "createVatTransaction": bool(_value(dto, "createVatTransaction", False)),
        "skipVatAmountValidation": bool(_value(dto, "skipVatAmountValidation", False)),
        "transactionCode": _value(dto, "transactionCode"),
        "branch": _value(dto, "branch", BRANCH["number"]),
        "journalTransactionLines": lines,
        "attachments": [],
    }
    with transaction.atomic():
        document = visma_document_create(
            company_id, "journal", batch_number, body, label="Journal transaction", at=moment
        )
        if not hold:
            gl_balances_post(company_id, lines)
    return document


def journal_release(company_id: str, batch_number: str) -> dict:
    """Release a batch kept on hold: it is posted and reaches the GL balances."""
    released: list[dict] = []

    def change(body: dict) -> dict:
        if body["status"] != "Hold":
            raise VismaError.invalid(f"Journal transaction '{batch_number}' is {body['status']}: only a batch on "
                                     "hold can be released.")
        body["status"] = "Posted"
        body["hold"] = False
        released.extend(body["journalTransactionLines"])
        return body

    with transaction.atomic():
        visma_document_update(
            company_id, "journal", batch_number, change, label="Journal transaction", if_match=None,
            edited_by_others=False,
        )
        gl_balances_post(company_id, released)
    return {"actionId": str(uuid.uuid4()), "actionResult": "Done", "errorInfo": None}


def _action_done() -> dict:
    # ReleaseInvoiceActionResultDto / ReleasePaymentActionResultDto: {actionId, actionResult, errorInfo}.
    return {"actionId": str(uuid.uuid4()), "actionResult": "Done", "errorInfo": None}


def _releasable(body: dict, label: str, number: str) -> None:
    """Only a document neither on hold nor released yet can be released (Acumatica: a document on hold must be
    taken off hold first)."""
    if body.get("hold") or body.get("status") == "Hold":
        raise VismaError.invalid(f"{label} '{number}' is on hold and cannot be released.")
    if body.get("status") != "Balanced":
        raise VismaError.invalid(f"{label} '{number}' is {body.get('status')}: it has been released already.")


def _period_open_at_release(company_id: str, body: dict, field_name: str, ledger: str) -> None:
    # A period closed since the document was entered stops its release too.
    financial_period_require(company_id, body.get(field_name), datetime.now().date(), ledger, field_name)


def customer_invoice_release(company_id: str, number: str) -> dict:
    """POST /v1/customerinvoice/{invoiceNumber}/action/release: a balanced invoice becomes Open (payable)."""

    def change(body: dict) -> dict:
        _releasable(body, "Invoice", number)
        _period_open_at_release(company_id, body, "financialPeriod", "AR")
        body["status"] = "Open" if visma_money(body.get("balanceInCurrency")) else "Closed"
        return body

    visma_document_update(company_id, "customer_invoice", number, change, label="Invoice", if_match=None,
                          edited_by_others=False)
    return _action_done()


def customer_credit_note_release(company_id: str, number: str) -> dict:
    """POST /v1/customerCreditNote/{creditNoteNumber}/action/release (swagger): a balanced credit note becomes Open,
    and only an Open one can be paid out by a refund (Acumatica ARPayment: applications are to released documents)."""

    def change(body: dict) -> dict:
        _releasable(body, "Credit note", number)
        _period_open_at_release(company_id, body, "financialPeriod", "AR")
        body["status"] = "Open" if visma_money(body.get("balanceInCurrency")) else "Closed"
        return body

    visma_document_update(company_id, "customer_credit_note", number, change, label="Credit note", if_match=None,
                          edited_by_others=False)
    return _action_done()


def _settle(company_id: str, collection: str, key: str, label: str, amount_paid: Decimal, where: str) -> None:
    """Take a released payment's amount off the invoice's balance; a balance of 0 closes the invoice."""

    def change(body: dict) -> dict:
        balance = visma_money(body["balanceInCurrency"])
        if amount_paid > balance:
            raise VismaError.invalid(f"{where}amountPaid: {amount_paid} exceeds the balance {balance} of {label} "
                                     f"'{key}'.")
        rate = Decimal(str(body.get("exchangeRate") or 1))
        body["balanceInCurrency"] = _amount(balance - amount_paid)
        body["balance"] = _amount(visma_money((balance - amount_paid) * rate))
        if balance - amount_paid == 0:
            body["status"] = "Closed"
        return body

    visma_document_update(company_id, collection, key, change, label=label, if_match=None, edited_by_others=False)


def customer_payment_release(company_id: str, number: str, dto: dict | None) -> dict:
    """POST /v1/customerPayment/{paymentNumber}/action/release (ReleasePaymentActionDto): only now does the payment
    settle the invoices it is applied to (Acumatica ARPayment: the application is posted at release; an unreleased
    payment leaves the invoice's balance as it was)."""
    document = visma_document_get(company_id, "customer_payment", number, label="Payment")
    payment_type = _value(dto or {}, "type")
    if payment_type and payment_type != document.body.get("type"):
        raise VismaError.invalid(f"type: Payment '{number}' is a {document.body.get('type')}, not a {payment_type}.")
    _releasable(document.body, "Payment", number)
    _period_open_at_release(company_id, document.body, "applicationPeriod", "AR")
    with transaction.atomic():
        # A payment settles its invoices, a refund pays out its credit notes (PAYMENT_APPLIES_TO).
        for index, line in enumerate(document.body.get("paymentLines") or []):
            document_type = line.get("documentType") or "Invoice"
            _settle(company_id, CUSTOMER_DOCUMENT_COLLECTIONS.get(document_type, "customer_invoice"), line["refNbr"],
                    document_type, visma_money(line["amountPaid"]), f"paymentLines[{index}].")

        def change(body: dict) -> dict:
            body["status"] = "Open" if visma_money(body.get("availableBalance")) else "Closed"
            return body

        visma_document_update(company_id, "customer_payment", number, change, label="Payment", if_match=None,
                              edited_by_others=False)
    return _action_done()


def supplier_invoice_release(company_id: str, key: str) -> dict:
    """POST /v1/supplierInvoice/{documentType}/{invoiceNumber}/action/release: a balanced invoice becomes Open."""

    def change(body: dict) -> dict:
        _releasable(body, "Supplier invoice", key)
        _period_open_at_release(company_id, body, "financialPeriod", "AP")
        body["status"] = "Open"
        return body

    visma_document_update(company_id, "supplier_invoice", key, change, label="Supplier invoice", if_match=None,
                          edited_by_others=False)
    return _action_done()


def supplier_payment_release(company_id: str, number: str, dto: dict | None) -> dict:
    """POST /v1/supplierPayment/{paymentNumber}/action/release (ReleaseSupplierPaymentActionDto): the payment
    settles the supplier invoices it is applied to."""
    document = visma_document_get(company_id, "supplier_payment", number, label="Supplier payment")
    _releasable(document.body, "Supplier payment", number)
    _period_open_at_release(company_id, document.body, "applicationPeriod", "AP")
    with transaction.atomic():
        for index, line in enumerate(document.body.get("paymentLines") or []):
            _settle(company_id, "supplier_invoice", f"{line['docType']}/{line['invoiceRefNbr']}", "Supplier invoice",
                    visma_money(line["amountPaid"]), f"paymentLines[{index}].")

        def change(body: dict) -> dict:
            body["status"] = "Open" if visma_money(body.get("unappliedBalance")) else "Closed"
            body["released"] = True
            return body

        visma_document_update(company_id, "supplier_payment", number, change, label="Supplier payment",
                              if_match=None, edited_by_others=False)
    return _action_done()


def gl_balances_post(company_id: str, lines: list[dict]) -> None:
    """Add posted journal lines to the per-account debit and credit totals (base currency)."""
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal("0.00"), Decimal("0.00")])
    for line in lines:
        totals[line["accountNumber"]][0] += visma_money(line["debitAmount"])
        totals[line["accountNumber"]][1] += visma_money(line["creditAmount"])
    for account_cd, (debit, credit) in sorted(totals.items()):
        balance, _ = VismaGLBalance.objects.get_or_create(company_id=company_id, account_cd=account_cd)
        VismaGLBalance.objects.filter(pk=balance.pk).update(
            debit_total=F("debit_total") + debit, credit_total=F("credit_total") + credit
        )


# Currencies --------------------------------------------------------------------------------------------------


def currencies() -> list[dict]:
    """GET /v1/currency (CurrencyDto): every currency the company knows, the base currency flagged isBaseCurrency."""
    base = visma_base_currency()
    return [{"id": code, "description": code, "symbol": code, "isBaseCurrency": code == base,
             "decimalPrecision": 0 if code == "JPY" else 2, "isUsedForAccounting": True}
            for code in sorted(CURRENCY_RATES)]


# Lists -------------------------------------------------------------------------------------------------------


def _lines_mention(lines_key: str, reference_key: str):
    def test(body: dict, value: str) -> bool:
        return any(line.get(reference_key) == value for line in body.get(lines_key, []))

    return test


def _released(body: dict, value: str) -> bool:
    return (body.get("status") not in ("Hold", "Balanced")) == (value.lower() == "true")


def _module(body: dict, value: str) -> bool:
    return body.get("module") == f"Module{value}" or body.get("module") == value


LISTS = {
    "vat": ListSpec("vat", paged=False),
    "account": ListSpec("account", {"active": ListFilter("active", "boolean")}, paged=False,
                        ignored=frozenset({"greaterThanValue", "includeAccountClassDescription"})),
    "subaccount": ListSpec("subaccount", {"active": ListFilter("active", "boolean")}),
    "customer": ListSpec("customer", {
        "name": ListFilter("name", "iexact"),
        "status": ListFilter("status"),
        "corporateId": ListFilter("corporateId"),
        "vatRegistrationId": ListFilter("vatRegistrationId"),
        "email": ListFilter("mainContact__email", "iexact"),
        "phone": ListFilter("mainContact__phone1"),
    }),
    "supplier": ListSpec("supplier", {
        "name": ListFilter("name", "iexact"),
        "status": ListFilter("status"),
        "corporateId": ListFilter("corporateId"),
        "vatRegistrationId": ListFilter("vatRegistrationId"),
    }),
    "customer_invoice": ListSpec("customer_invoice", {
        "documentType": ListFilter("documentType"),
        "status": ListFilter("status"),
        "released": ListFilter(test=_released),
        "financialPeriod": ListFilter("financialPeriod"),
        "externalReference": ListFilter("externalReference"),
        "paymentReference": ListFilter("paymentReference"),
        "customerRefNumber": ListFilter("customerRefNumber"),
        "customer": ListFilter("customer__number"),
        "branch": ListFilter("branchNumber__number"),
    }),
    "customer_credit_note": ListSpec("customer_credit_note", {
        "status": ListFilter("status"),
        "released": ListFilter(test=_released),
        "financialPeriod": ListFilter("financialPeriod"),
        "externalReference": ListFilter("externalReference"),
        "customerRefNumber": ListFilter("customerRefNumber"),
        "customer": ListFilter("customer__number"),
    }),
    "customer_payment": ListSpec("customer_payment", {
        "paymentNbr": ListFilter("refNbr"),
        "paymentType": ListFilter("type"),
        "customer": ListFilter("customer__number"),
        "status": ListFilter("status"),
        "financialPeriod": ListFilter("applicationPeriod"),
        "branch": ListFilter("branch"),
        "invoiceRefNbr": ListFilter(test=_lines_mention("paymentLines", "refNbr")),
    }),
    "supplier_invoice": ListSpec("supplier_invoice", {
        "supplier": ListFilter("supplier__number"),
        "documentType": ListFilter("documentType"),
        "status": ListFilter("status"),
        "released": ListFilter(test=_released),
        "financialPeriod": ListFilter("financialPeriod"),
        "branch": ListFilter("branchNumber__number"),
    }),
    "supplier_payment": ListSpec("supplier_payment", {
        "supplier": ListFilter("supplier__number"),
        "paymentType": ListFilter("type"),
        "status": ListFilter("status"),
        "financialPeriod": ListFilter("applicationPeriod"),
        "branch": ListFilter("branch"),
        "invoiceRefNbr": ListFilter(test=_lines_mention("paymentLines", "invoiceRefNbr")),
    }),
    "journal": ListSpec("journal", {
        "periodId": ListFilter("financialPeriod"),
        "module": ListFilter(test=_module),
        "status": ListFilter("status"),
        "branch": ListFilter("branch"),
    }, ignored=frozenset({"releasedBatch"})),
}


@dataclass(frozen=True)
class JournalLinePage:
    """A page of journal transactions counted in lines, as GET /v2/journaltransaction pages them."""

    batches: list[dict]
    total_count: int


def journal_page(company_id: str, query: dict) -> JournalLinePage:
    """Journal batches by period or change date; pageSize and totalCount count lines, so a batch may span pages."""
    if not query.get("periodId") and not query.get("lastModifiedDateTime"):
        raise VismaError.invalid("PeriodId or LastModifiedDateTime must be provided.")
    documents, tests = visma_documents_query(company_id, LISTS["journal"], query)
    lines = [
        (document, line)
        for document in documents
        if all(test(document.body, value) for test, value in tests)
        for line in document.body["journalTransactionLines"]
    ]
    offset, size = visma_page_window(query, total=len(lines), paged=True)
    metadata = Page(documents=[], total_count=len(lines)).metadata
    batches: list[dict] = []
    for document, line in lines[offset : offset + size]:
        if not batches or batches[-1]["batchNumber"] != document.key:
            rendered = visma_document_render(document, metadata=metadata)
            rendered["journalTransactionLines"] = []
            batches.append(rendered)
        batches[-1]["journalTransactionLines"].append(line)
    return JournalLinePage(batches=batches, total_count=len(lines))

