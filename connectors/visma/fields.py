"""The lengths of the Visma.net ERP fields we write (Acumatica's DAC columns); the check every write passes first."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The mark left where a text was cut: one character, so a cut text is still within its limit.
CUT_MARK = "…"


class VismaDocumentError(ValueError):
    """The posting cannot become this Visma document as it stands (no customer, a value too long for its field...)."""


@dataclass(frozen=True)
class VismaField:
    """One field of a write DTO: the Acumatica column behind it, its length, and whether a cut is harmless."""

    acumatica: str
    length: int | None  # None: no limit we know of (a note), or a code Visma must already have (checked elsewhere)
    cut: bool = False
    code: bool = False  # an id Visma already has (account, currency, customer...): validated against Visma's data


def _text(acumatica: str, length: int | None) -> VismaField:
    return VismaField(acumatica, length, cut=True)


def _identifier(acumatica: str, length: int) -> VismaField:
    return VismaField(acumatica, length)


def _code(acumatica: str) -> VismaField:
    return VismaField(acumatica, None, code=True)


# Sources: Acumatica 20R1 DAC source (PX.Objects), the PXDBString(n) of each column; Visma.net ERP is built on it.
# A dotted name is a field of each line (journalTransactionLines.referenceNumber) or of a nested object
# (mainContact.email). docs/visma-field-lengths.md keeps this table for people, with its sources.
DATES_AND_PERIODS = {"transactionDate", "financialPeriod", "postPeriod", "documentDate", "documentDueDate", "date",
                     "dueDate", "applicationDate", "applicationPeriod"}

_JOURNAL = {
    "batchNumber": _identifier("Batch.BatchNbr", 15),
    "description": _text("Batch.Description", 255),
    "currencyId": _code("Batch.CuryID"),
    "journalTransactionLines.referenceNumber": _identifier("GLTran.RefNbr", 15),
    "journalTransactionLines.transactionDescription": _text("GLTran.TranDesc", 256),
    "journalTransactionLines.accountNumber": _code("GLTran.AccountID → Account.AccountCD"),
    "journalTransactionLines.operation": _code("(line operation)"),
}
_CUSTOMER_INVOICE = {
    "referenceNumber": _identifier("ARRegister.RefNbr", 15),
    # Visma's own field; no length published (swagger, Acumatica source): built for the strictest of its reference
    # fields, 15. It carries only our 15-character marker.
    "externalReference": _identifier("(Visma) externalReference, assumed RefNbr-like", 15),
    "customerRefNumber": _identifier("ARInvoice.InvoiceNbr", 40),
    "invoiceText": _text("ARRegister.DocDesc", 256),
    "note": _text("Note.NoteText (nvarchar(max))", None),
    "customerNumber": _code("ARRegister.CustomerID → BAccount.AcctCD"),
    "currencyId": _code("ARRegister.CuryID"),
    "invoiceLines.description": _text("ARTran.TranDesc", 256),
    "invoiceLines.accountNumber": _code("ARTran.AccountID → Account.AccountCD"),
    "invoiceLines.inventoryNumber": _code("ARTran.InventoryID → InventoryItem.InventoryCD"),
    "invoiceLines.vatCodeId": _code("ARTran.TaxCategoryID"),
    "invoiceLines.operation": _code("(line operation)"),
}
_CUSTOMER_CREDIT_NOTE = {
    "referenceNumber": _identifier("ARRegister.RefNbr", 15),
    # As on the invoice: it carries only our 15-character marker.
    "externalReference": _identifier("(Visma) externalReference, assumed RefNbr-like", 15),
    "customerRefNumber": _identifier("ARInvoice.InvoiceNbr", 40),
    "invoiceText": _text("ARRegister.DocDesc", 256),
    "note": _text("Note.NoteText (nvarchar(max))", None),
    "customerNumber": _code("ARRegister.CustomerID → BAccount.AcctCD"),
    "currencyId": _code("ARRegister.CuryID"),
    "lines.description": _text("ARTran.TranDesc", 256),
    "lines.accountNumber": _code("ARTran.AccountID → Account.AccountCD"),
    "lines.vatCodeId": _code("ARTran.TaxCategoryID"),
    "lines.operation": _code("(line operation)"),
}
_PAYMENT = {
    "referenceNumber": _identifier("ARRegister.RefNbr / APRegister.RefNbr", 15),
    "paymentRef": _identifier("ARPayment.ExtRefNbr / APPayment.ExtRefNbr", 40),
    "type": _code("ARRegister.DocType / APRegister.DocType"),
    "cashAccount": _code("ARPayment.CashAccountID → CashAccount.CashAccountCD"),
    "paymentMethod": _code("ARPayment.PaymentMethodID"),
    "currency": _code("ARRegister.CuryID"),
    "paymentLines.operation": _code("(line operation)"),
    "paymentLines.documentType": _code("ARAdjust.AdjdDocType"),
    "paymentLines.refNbr": _code("ARAdjust.AdjdRefNbr (an existing invoice)"),
}
_CUSTOMER_PAYMENT = {
    **_PAYMENT,
    "customer": _code("ARRegister.CustomerID → BAccount.AcctCD"),
    "invoiceText": _text("ARRegister.DocDesc", 256),
}
_SUPPLIER_PAYMENT = {
    **_PAYMENT,
    "supplier": _code("APRegister.VendorID → BAccount.AcctCD"),
    "description": _text("APRegister.DocDesc", 256),
}
_SUPPLIER_INVOICE = {
    "referenceNumber": _identifier("APRegister.RefNbr", 15),
    "supplierReference": _identifier("APInvoice.InvoiceNbr", 40),
    "description": _text("APRegister.DocDesc", 256),
    "documentType": _code("APRegister.DocType"),
    "supplierNumber": _code("APRegister.VendorID → BAccount.AcctCD"),
    "currencyId": _code("APRegister.CuryID"),
    "invoiceLines.transactionDescription": _text("APTran.TranDesc", 256),
    "invoiceLines.accountNumber": _code("APTran.AccountID → Account.AccountCD"),
    "invoiceLines.operation": _code("(line operation)"),
}
_CONTACT = {
    "name": _identifier("Contact.FullName", 255),
    "attention": _identifier("Contact.Attention", 255),
    "email": _identifier("Contact.EMail", 255),
    "web": _identifier("Contact.WebSite", 255),
    "phone1": _identifier("Contact.Phone1", 50),
    "phone2": _identifier("Contact.Phone2", 50),
    "fax": _identifier("Contact.Fax", 50),
}


def _party(name_field: str) -> dict[str, VismaField]:
    fields = {
        "number": _identifier("BAccount.AcctCD", 30),
        "name": _identifier(f"{name_field}.AcctName", 60),
        # "Used in external integration" (BAccount.AcctReferenceNbr's own summary): where a party keeps our marker.
        "accountReference": _identifier("BAccount.AcctReferenceNbr", 50),
        "note": _text("Note.NoteText (nvarchar(max))", None),
        "currencyId": _code(f"{name_field}.CuryID"),
        "status": _code("BAccount.Status"),
    }
    for contact in ("mainContact", "invoiceContact", "deliveryContact", "remitContact", "supplierContact"):
        fields.update({f"{contact}.{key}": field for key, field in _CONTACT.items()})
    return fields


DOCUMENT_FIELDS: dict[str, dict[str, VismaField]] = {
    "journal": _JOURNAL,
    "customer_invoice": _CUSTOMER_INVOICE,
    "customer_credit_note": _CUSTOMER_CREDIT_NOTE,
    "customer_payment": _CUSTOMER_PAYMENT,
    "supplier_invoice": _SUPPLIER_INVOICE,
    "supplier_payment": _SUPPLIER_PAYMENT,
    "customer": _party("Customer"),
    "supplier": _party("Vendor"),
}


def visma_length(text: str) -> int:
    """A text's length as Visma's columns count it: nvarchar counts UTF-16 code units, so 😀 takes two."""
    return len(text.encode("utf-16-le")) // 2


def visma_text_cut(text: str, length: int) -> str:
    """The text cut to `length` UTF-16 units with the cut mark at the end; never splits a character."""
    if visma_length(text) <= length:
        return text
    kept = []
    room = length - visma_length(CUT_MARK)
    for character in text:
        room -= visma_length(character)
        if room < 0:
            break
        kept.append(character)
    return "".join(kept).rstrip() + CUT_MARK


@dataclass(frozen=True)
class FieldCut:
    """A text cut to fit: which field, how long it was, its limit."""

    field: str
    length: int
    limit: int


def visma_fields_fit(kind: str, fields: Mapping[str, Any], *, what: str) -> tuple[dict, list[FieldCut]]:
    """The plain-fields DTO of a `kind` with every text within its Visma length: texts cut with "…", anything else
    too long refused (VismaDocumentError naming the field, its length, the limit and `what`), a string field not in
    the table refused too. Nothing is sent before this passes, so no document is ever half written."""
    table = DOCUMENT_FIELDS[kind]
    cuts: list[FieldCut] = []
    fitted = _fit(table, fields, prefix="", what=what, kind=kind, cuts=cuts)
    return fitted, cuts


def _fit(table: Mapping[str, VismaField], fields: Mapping[str, Any], *, prefix: str, what: str, kind: str,
         cuts: list[FieldCut]) -> dict:
    fitted: dict[str, Any] = {}
    for name, value in fields.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping) and not name.lower().endswith("subaccount"):
            fitted[name] = _fit(table, value, prefix=f"{path}.", what=what, kind=kind, cuts=cuts)
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            fitted[name] = [
                _fit(table, item, prefix=f"{path}.", what=f"{what} line {number}", kind=kind, cuts=cuts)
                for number, item in enumerate(value, start=1)
            ]
        elif isinstance(value, str):
            fitted[name] = _fit_text(table, path, value, what=what, kind=kind, cuts=cuts)
        else:
            fitted[name] = value  # amounts, flags, subaccount segments (values Visma already has)
    return fitted


def _fit_text(table: Mapping[str, VismaField], path: str, value: str, *, what: str, kind: str,
              cuts: list[FieldCut]) -> str:
    if path in DATES_AND_PERIODS:
        return value
    field = table.get(path)
    if field is None:
        raise VismaDocumentError(
            f"{what}: {kind} field {path} has no known Visma length; add it to connectors/visma/fields.py before "
            "writing it"
        )
    length = visma_length(value)
    if field.length is None or length <= field.length:
        return value
    if field.cut:
        cuts.append(FieldCut(field=path, length=length, limit=field.length))
        return visma_text_cut(value, field.length)
    raise VismaDocumentError(
        f"{what}: {path} is {length} characters, Visma keeps {field.length} ({field.acumatica}); "
        f"it cannot be cut without losing what it identifies: {value!r}"
    )
