"""Square vendors (beta API) → Visma suppliers, once: a vendor already mapped, or named like a Visma supplier, is
linked (an external reference), never created twice; an inactive vendor becomes an inactive supplier, and a vendor
made INACTIVE after it was linked sets its supplier Inactive (once: record "<vendor id>:inactive")."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from audit.models import RecordStatus, SyncRecord
from audit.selectors import record_of, record_posting
from connectors.pipeline import SourceDataError, SourceObject, Written
from connectors.visma import postings as visma_postings
from connectors.visma.fields import visma_length
from connectors.visma.target import VismaTarget
from mappings.services import MappingOutcome
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
# A linked vendor Square made INACTIVE later: its supplier is set Inactive, once (source id "<vendor id>:inactive").
INACTIVE_PART = ":inactive"
SUPPLIER_STATUS = "supplier_status"


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
            if not vendor.get("id"):
                continue
            if str(vendor["id"]) not in settled:
                yield self.source_object(vendor)
            elif (notice := self.inactive_notice(vendor)) is not None:
                yield notice

    def read_one(self, source_id: str) -> SourceObject | None:
        vendor_id = source_id.removesuffix(INACTIVE_PART)
        vendor = self.square.vendor(vendor_id)
        if vendor is None:
            return None
        if source_id.endswith(INACTIVE_PART):
            return self.inactive_notice(vendor, again=True)
        record = record_of(self.integration, VENDORS, vendor_id)
        if record is not None and record.status in FINAL:
            # A vendor.updated about a linked vendor: only its deactivation is sent to Visma.
            return self.inactive_notice(vendor)
        return self.source_object(vendor)

    def inactive_notice(self, vendor: Mapping, *, again: bool = False) -> SourceObject | None:
        """A vendor that is INACTIVE now but was linked to its supplier as ACTIVE: its supplier is set Inactive
        (an inactive supplier takes no new documents), once — not when the notice's record exists already
        (`again`: read for that record itself)."""
        vendor_id = str(vendor.get("id") or "")
        if vendor.get("status") != "INACTIVE":
            return None
        record = record_of(self.integration, VENDORS, vendor_id)
        if record is None or record.status != RecordStatus.POSTED or not record.target_id:
            return None
        linked_as = ((record_posting(record).extra.get("fields") or {}).get("status")
                     if record.proposed_posting or record.corrected_posting else None)
        if linked_as == VISMA_STATUS["INACTIVE"]:
            return None
        notice_id = vendor_id + INACTIVE_PART
        if not again and record_of(self.integration, VENDORS, notice_id) is not None:
            return None
        return SourceObject(source_id=notice_id, payload={"vendor": dict(vendor), "supplier": record.target_id},
                            updated_at=_updated(vendor))

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
        if source.source_id.endswith(INACTIVE_PART):
            return self._deactivation(source)
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
        if not existing and visma_length(name) > NAME_LENGTH:
            # A name is never cut (docs/visma-field-lengths.md): a cut name is another supplier's, or none.
            raise SourceDataError(f"{what}: its name is {visma_length(name)} characters, Visma's supplier name holds "
                                  f"{NAME_LENGTH}: shorten it in Square, or create the supplier by hand and map the "
                                  "vendor (admin: external references, system square, kind vendor), then replay")
        fields: dict = {"name": name, "status": VISMA_STATUS[status]}
        # A removed contact (VendorContact.removed, api.json) is no longer the vendor's: never its main contact.
        email = next((str(contact.get("email_address")) for contact in vendor.get("contacts") or []
                      if contact.get("email_address") and not contact.get("removed")), "")
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


    def _deactivation(self, source: SourceObject) -> Posting:
        vendor = source.payload.get("vendor") or {}
        vendor_id = source.source_id.removesuffix(INACTIVE_PART)
        supplier = str(source.payload.get("supplier") or "")
        name = str(vendor.get("name") or vendor_id)
        if vendor.get("status") != "INACTIVE":
            raise SourceDataError(f"Square vendor {name} ({vendor_id}) is {vendor.get('status')} again: Visma "
                                  f"supplier {supplier} is left as it is; reject this record")
        return Posting(
            document=SUPPLIER_STATUS, marker=self.marker(source.source_id), currency="", date=self.day(None),
            description=f"Square vendor {name} ({vendor_id}) became INACTIVE: Visma supplier {supplier} set Inactive",
            facts=MatchFacts(transaction_type="vendor", amount=Decimal(0), currency=""),
            supplier=supplier, extra={"square_id": vendor_id, "supplier_update": {"status": VISMA_STATUS["INACTIVE"]}},
        )


class VendorsStream(VismaTarget, SquareVendorSource):
    """Square vendors → Visma suppliers, linked once (external reference square/vendor); a deactivation after
    linking → the supplier's status Inactive (PUT with If-Match: visma_supplier_update)."""

    def map(self, posting: Posting) -> MappingOutcome:
        if posting.document == SUPPLIER_STATUS:
            return MappingOutcome(posting, None, [])  # no GL lines
        return super().map(posting)

    def problems(self, posting: Posting) -> list[str]:
        if posting.document == SUPPLIER_STATUS:
            return [] if posting.supplier else [f"{posting.marker} names no Visma supplier"]
        return super().problems(posting)

    def find_posted(self, posting: Posting, record) -> Written | None:
        if posting.document == SUPPLIER_STATUS:
            current = self.visma_client.get_one(f"{visma_postings.SUPPLIERS}/{posting.supplier}")
            inactive = current is not None and str(current.get("status")) == VISMA_STATUS["INACTIVE"]
            return Written.of(posting, posting.supplier, status="Inactive") if inactive else None
        if posting.extra.get("existing_supplier"):
            return self._link(posting, Written.of(posting, posting.extra["existing_supplier"], status="linked"))
        return self._link(posting, super().find_posted(posting, record))

    def write(self, posting: Posting, record) -> Written:
        if posting.document == SUPPLIER_STATUS:
            visma_postings.visma_supplier_update(self.visma_client, posting.supplier,
                                                 posting.extra["supplier_update"], sync_record=record)
            return Written.of(posting, posting.supplier, status="Inactive")
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
