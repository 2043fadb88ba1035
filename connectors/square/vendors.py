"""Square vendors (beta API) → Visma suppliers, once: a vendor already mapped, or named like a Visma supplier, is
linked (an external reference), never created twice; an inactive vendor becomes an inactive supplier."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from audit.models import RecordStatus, SyncRecord
from connectors.pipeline import SourceDataError, SourceObject, Written
from connectors.visma.fields import visma_text_cut
from connectors.visma.target import VismaTarget
from mappings.documents import MatchFacts, Posting
from mappings.models import ExternalReference, Supplier
from mappings.reference import SUPPLIERS, reference_data_refresh
from mappings.selectors import external_reference_visma_id

from .sources import SYSTEM, SquareSource, square_time

VENDORS = "vendors"
# VendorStatus (api.json): INACTIVE "cannot receive purchase orders". Visma's supplier status for each
# (SupplierUpdateDto.status: Active, OnHold, HoldPayments, Inactive, OneTime).
VISMA_STATUS = {"ACTIVE": "Active", "INACTIVE": "Inactive"}
# Visma's supplier name (Vendor.AcctName) holds 60 characters; Square's vendor name up to 100 (api.json Vendor.name).
NAME_LENGTH = 60
# Visma takes no more: nothing is settled when the supplier exists (a found or linked one, or one we made).
FINAL = (RecordStatus.POSTED, RecordStatus.REJECTED)


def supplier_name_key(name: str) -> str:
    """A supplier's name as two names are compared: without case or spaces ("Nordic  Coffee AS" = "nordic coffee as"
    = "NordicCoffee AS")."""
    return "".join(str(name or "").split()).casefold()


def _updated(vendor: Mapping) -> datetime | None:
    try:
        return square_time(vendor.get("updated_at"))
    except SourceDataError:
        return None


class SquareVendorSource(SquareSource):
    """Square vendors → Visma suppliers. The supplier is the target; its number is the record's target id and an
    external reference (square, vendor → supplier) links the two either way: created, or found by name or mapping.

    An INACTIVE vendor not in Visma is created as an Inactive supplier rather than skipped: the vendor exists in the
    seller's books (past purchase orders may still be invoiced), one supplier per vendor stays linked if it is
    activated again, and an inactive Visma supplier takes no new documents — never an active one.
    """

    name = VENDORS
    target_kind = "supplier"
    # Vendors change seldom and vendor.* webhooks bring changes at once: an hourly listing catches a missed one.
    default_poll_minutes = 60

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        # SearchVendors has no "changed since" filter (docs/square.md §5): every vendor is listed; those whose
        # supplier is settled already cost nothing more.
        vendors = list(self.square.vendors())
        settled = set(SyncRecord.objects.filter(
            integration=self.integration, stream=VENDORS, status__in=FINAL,
            source_id__in=[str(vendor.get("id")) for vendor in vendors]).values_list("source_id", flat=True))
        for vendor in vendors:
            if vendor.get("id") and str(vendor["id"]) not in settled:
                yield self.source_object(vendor)

    def read_one(self, source_id: str) -> SourceObject | None:
        vendor = self.square.vendor(source_id)
        return self.source_object(vendor) if vendor is not None else None

    @staticmethod
    def source_object(vendor: Mapping) -> SourceObject:
        return SourceObject(source_id=str(vendor["id"]), payload={"vendor": dict(vendor)}, updated_at=_updated(vendor))

    @cached_property
    def _suppliers_read(self) -> bool:
        """The supplier mirror brought up to date once per stream (a delta from Visma): a supplier made in Visma
        since the last refresh is matched by name, not duplicated."""
        reference_data_refresh(self.tenant, kinds=[SUPPLIERS], client=self.visma_client, revalidate_rules=False)
        return True

    def supplier_named(self, name: str, *, what: str) -> str:
        """The Visma supplier whose name equals `name` (case and spaces aside); "" for none; two flag the vendor."""
        assert self._suppliers_read
        key = supplier_name_key(name)
        numbers = [number for number, named in Supplier.objects.filter(tenant=self.tenant).values_list(
            "number", "name") if supplier_name_key(named) == key]
        if len(numbers) > 1:
            raise SourceDataError(f"{what}: Visma has {len(numbers)} suppliers named {name!r} ({', '.join(numbers)}): "
                                  "map the vendor to one (admin: external references, system square, kind vendor)")
        return numbers[0] if numbers else ""

    def transform(self, source: SourceObject) -> Posting:
        vendor = source.payload.get("vendor") or {}
        vendor_id = str(vendor.get("id") or source.source_id)
        name = str(vendor.get("name") or "").strip()
        status = str(vendor.get("status") or "")
        what = f"Square vendor {name or vendor_id}" + (f" ({vendor_id})" if name else "")
        # SearchVendors is beta: a vendor without the fields we rely on is flagged, never guessed.
        if not name or not status:
            missing = " and ".join(field for field, value in (("name", name), ("status", status)) if not value)
            raise SourceDataError(f"{what} has no {missing} (the beta Vendors API answered another shape): create or "
                                  "map the supplier by hand, then reject this record")
        if status not in VISMA_STATUS:
            raise SourceDataError(f"{what} has status {status}, neither ACTIVE nor INACTIVE")
        existing, how = external_reference_visma_id(self.tenant, system=SYSTEM, visma_kind="supplier",
                                                    keys=[("vendor", vendor_id)]), "its external reference"
        if not existing:
            existing, how = self.supplier_named(name, what=what), "the same name"
        fields: dict = {"name": visma_text_cut(name, NAME_LENGTH), "status": VISMA_STATUS[status]}
        email = next((str(contact.get("email_address")) for contact in vendor.get("contacts") or []
                      if contact.get("email_address")), "")
        if email:
            fields["mainContact"] = {"email": email}
        if vendor.get("account_number"):
            fields["note"] = f"Square vendor account number {vendor['account_number']}"
        return Posting(
            document="supplier", marker=self.marker(vendor_id), currency="", date=self.day(None),
            description=(f"Square vendor {name} ({vendor_id}) linked to Visma supplier {existing} by {how}"
                         if existing else f"Square vendor {name} ({vendor_id}) → new {VISMA_STATUS[status].lower()} "
                                          "Visma supplier"),
            facts=MatchFacts(transaction_type="vendor", amount=Decimal(0), currency=""),
            extra={"fields": fields, "square_id": vendor_id, "existing_supplier": existing},
        )


class VendorsStream(VismaTarget, SquareVendorSource):
    """Square vendors → Visma suppliers, linked once (external reference square/vendor)."""

    def find_posted(self, posting: Posting, record) -> Written | None:
        if posting.extra.get("existing_supplier"):
            return self._link(posting, Written.of(posting, posting.extra["existing_supplier"], status="linked"))
        return self._link(posting, super().find_posted(posting, record))

    def write(self, posting: Posting, record) -> Written:
        if posting.extra.get("existing_supplier"):
            # Visma has it already: nothing is written there, the two are linked here.
            return self._link(posting, Written.of(posting, posting.extra["existing_supplier"], status="linked"))
        return self._link(posting, super().write(posting, record))

    def _link(self, posting: Posting, written: Written | None) -> Written | None:
        if written is not None:
            ExternalReference.objects.update_or_create(
                tenant=self.tenant, system=SYSTEM, external_kind="vendor", external_id=str(posting.extra["square_id"]),
                defaults={"visma_kind": "supplier", "visma_id": written.target_id})
        return written


STREAMS = {VendorsStream.name: VendorsStream}
