"""The emulated Visma's field lengths (Acumatica's DAC columns) and what it does with a longer value: refuse or cut."""
from __future__ import annotations

from dataclasses import dataclass

from .models import VismaSetting
from .visma_store import VismaError

# Each column as Acumatica 20R1 declares it (PX.Objects DAC source), the length of its PXDBString. nvarchar columns:
# SQL Server counts UTF-16 code units. Kept apart from the product's table on purpose: the emulator must not share
# the product's assumptions.
DAC_LENGTHS = {
    "Batch.BatchNbr": 15,  # GL Batch.BatchNbr — PXDBString(15, IsUnicode = true, IsKey = true)
    "Batch.Description": 255,  # GL Batch.Description — PXDBString(255, IsUnicode = true)
    "GLTran.RefNbr": 15,  # GL GLTran.RefNbr — PXDBString(15, IsUnicode = true)
    "GLTran.TranDesc": 256,  # GL GLTran.TranDesc — PXDBString(256, IsUnicode = true)
    "ARRegister.RefNbr": 15,  # AR ARRegister.RefNbr — PXDBString(15, IsUnicode = true, IsKey = true)
    "ARRegister.DocDesc": 256,  # AR ARRegister.DocDesc — PXDBString(256, IsUnicode = true)
    "ARInvoice.InvoiceNbr": 40,  # AR ARInvoice.InvoiceNbr (customer's ref. nbr.) — PXDBString(40, IsUnicode = true)
    "ARTran.TranDesc": 256,  # AR ARTran.TranDesc — PXDBString(256, IsUnicode = true)
    "ARPayment.ExtRefNbr": 40,  # AR ARPayment.ExtRefNbr (payment ref.) — PXDBString(40, IsUnicode = true)
    "APRegister.RefNbr": 15,  # AP APRegister.RefNbr — PXDBString(15, IsUnicode = true, IsKey = true)
    "APRegister.DocDesc": 256,  # AP APRegister.DocDesc — PXDBString(256, IsUnicode = true)
    "APInvoice.InvoiceNbr": 40,  # AP APInvoice.InvoiceNbr (vendor ref.) — PXDBString(40, IsUnicode = true)
    "APTran.TranDesc": 256,  # AP APTran.TranDesc — PXDBString(256, IsUnicode = true)
    "APPayment.ExtRefNbr": 40,  # AP APPayment.ExtRefNbr — PXDBString(40, IsUnicode = true)
    "BAccount.AcctCD": 30,  # CR BAccount.AcctCD — PXDBString(30, IsUnicode = true, IsKey = true)
    "Customer.AcctName": 60,  # AR Customer.AcctName — 60 as Visma.net shows it (issue 8's table)
    "Vendor.AcctName": 60,  # AP Vendor.AcctName — likewise
    "BAccount.AcctReferenceNbr": 50,  # CR BAccount.AcctReferenceNbr — PXDBString(50, IsUnicode = true)
    "Contact.FullName": 255,  # CR Contact.FullName — PXDBString(255, IsUnicode = true)
    "Contact.Attention": 255,  # CR Contact.Attention — PXDBString(255, IsUnicode = true)
    "Contact.EMail": 255,  # CR Contact.EMail — PXDBEmail, 255
    "Contact.WebSite": 255,  # CR Contact.WebSite — PXDBWeblink, 255
    "Contact.Phone1": 50,  # CR Contact.Phone1 — PXDBString(50, IsUnicode = true)
    "Contact.Phone2": 50,  # CR Contact.Phone2 — PXDBString(50, IsUnicode = true)
    "Contact.Fax": 50,  # CR Contact.Fax — PXDBString(50, IsUnicode = true)
    # Visma's own customer-invoice field: no length is published (swagger, DAC source); taken as a reference
    # number's 15 — an assumption, said so in docs/visma-field-lengths.md.
    "Visma.ExternalReference": 15,
}

_CONTACT = {"name": "Contact.FullName", "attention": "Contact.Attention", "email": "Contact.EMail",
            "web": "Contact.WebSite", "phone1": "Contact.Phone1", "phone2": "Contact.Phone2", "fax": "Contact.Fax"}


def _party(name_column: str) -> dict[str, str]:
    fields = {"number": "BAccount.AcctCD", "name": name_column, "accountReference": "BAccount.AcctReferenceNbr"}
    for contact in ("mainContact", "invoiceContact", "deliveryContact", "remitContact", "supplierContact"):
        fields.update({f"{contact}.{key}": column for key, column in _CONTACT.items()})
    return fields


# Write-DTO field (lines as "lines[].field", nested objects as "object.field") → the DAC column behind it.
DTO_COLUMNS: dict[str, dict[str, str]] = {
    "journal": {
        "batchNumber": "Batch.BatchNbr",
        "description": "Batch.Description",
        "journalTransactionLines[].referenceNumber": "GLTran.RefNbr",
        "journalTransactionLines[].transactionDescription": "GLTran.TranDesc",
    },
    "customer_invoice": {
        "referenceNumber": "ARRegister.RefNbr",
        "externalReference": "Visma.ExternalReference",
        "customerRefNumber": "ARInvoice.InvoiceNbr",
        "invoiceText": "ARRegister.DocDesc",
        "invoiceLines[].description": "ARTran.TranDesc",
    },
    "customer_credit_note": {
        "referenceNumber": "ARRegister.RefNbr",
        "externalReference": "Visma.ExternalReference",
        "customerRefNumber": "ARInvoice.InvoiceNbr",
        "invoiceText": "ARRegister.DocDesc",
        "lines[].description": "ARTran.TranDesc",
    },
    "customer_payment": {
        "referenceNumber": "ARRegister.RefNbr",
        "paymentRef": "ARPayment.ExtRefNbr",
        "invoiceText": "ARRegister.DocDesc",
    },
    "supplier_invoice": {
        "referenceNumber": "APRegister.RefNbr",
        "supplierReference": "APInvoice.InvoiceNbr",
        "description": "APRegister.DocDesc",
        "invoiceLines[].transactionDescription": "APTran.TranDesc",
    },
    "supplier_payment": {
        "referenceNumber": "APRegister.RefNbr",
        "paymentRef": "APPayment.ExtRefNbr",
        "description": "APRegister.DocDesc",
    },
    "customer": _party("Customer.AcctName"),
    "supplier": _party("Vendor.AcctName"),
}

MODE_SETTING = "field_lengths"
REFUSE, TRUNCATE = "refuse", "truncate"
MODES = (REFUSE, TRUNCATE)


def visma_field_lengths_mode() -> str:
    """How the emulator treats a too-long value now: "refuse" (default) or "truncate"; shared by every process."""
    setting = VismaSetting.objects.filter(name=MODE_SETTING).first()
    return setting.value if setting and setting.value in MODES else REFUSE


def visma_field_lengths_mode_set(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    VismaSetting.objects.update_or_create(name=MODE_SETTING, defaults={"value": mode})
    return mode


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, length: int) -> str:
    # What SQL Server keeps of an nvarchar when it truncates: the first `length` UTF-16 code units.
    return text.encode("utf-16-le")[: length * 2].decode("utf-16-le", errors="ignore")


@dataclass(frozen=True)
class _Slot:
    """One string value in a write DTO: where it sits, and how to put a cut value back."""

    where: str
    column: str
    holder: dict
    key: str


def _slots(kind: str, dto: dict) -> list[_Slot]:
    columns = DTO_COLUMNS.get(kind, {})
    slots = []
    for path, column in columns.items():
        if "[]." in path:
            lines_name, field_name = path.split("[].", 1)
            for index, line in enumerate(dto.get(lines_name) or []):
                if isinstance(line, dict):
                    slots.extend(_slot(line, field_name, f"{lines_name}[{index}].", column))
        elif "." in path:
            object_name, field_name = path.split(".", 1)
            nested = dto.get(object_name)
            inner = nested.get("value") if isinstance(nested, dict) and set(nested) == {"value"} else nested
            if isinstance(inner, dict):
                slots.extend(_slot(inner, field_name, f"{object_name}.", column))
        else:
            slots.extend(_slot(dto, path, "", column))
    return slots


def _slot(holder: dict, name: str, where: str, column: str) -> list[_Slot]:
    wrapped = holder.get(name)
    if isinstance(wrapped, dict) and isinstance(wrapped.get("value"), str):
        return [_Slot(where=f"{where}{name}", column=column, holder=wrapped, key="value")]
    if isinstance(wrapped, str):
        return [_Slot(where=f"{where}{name}", column=column, holder=holder, key=name)]
    return []


def visma_field_lengths_apply(kind: str, dto: dict | None) -> dict | None:
    """Every string of a write DTO against its column: refused with a 400 naming the field and its limit, or cut
    silently to the limit (the lenient server), as the mode says. The DTO is changed in place and returned."""
    if not isinstance(dto, dict):
        return dto
    mode = visma_field_lengths_mode()
    for slot in _slots(kind, dto):
        value = slot.holder[slot.key]
        limit = DAC_LENGTHS[slot.column]
        if _units(value) <= limit:
            continue
        if mode == TRUNCATE:
            slot.holder[slot.key] = _cut(value, limit)
            continue
        raise VismaError.invalid(
            f"{slot.where}: the value is {_units(value)} characters long; the field takes at most {limit} "
            f"({slot.column}).",
            f"String or binary data would be truncated: {slot.column} is nvarchar({limit}).",
        )
    return dto
