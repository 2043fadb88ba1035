"""The review queue's forms: approve (with corrected accounts, dimensions, customer), reject with a reason, replay."""
from __future__ import annotations

from django import forms

from mappings.documents import Posting, posting_apply_correction
from mappings.models import DimensionValue
from mappings.periods import FinancialCalendar
from mappings.services import ReferenceMirror

from .models import SyncRecord

# The order posting lines are asked about; any other role a stream invents follows.
ROLE_ORDER = ("account", "fee", "clearing")
ROLE_LABELS = {"account": "revenue / receivable", "fee": "fee", "clearing": "clearing"}


def _roles(records: list[SyncRecord]) -> list[str]:
    seen = {line.get("role") for record in records for line in (record.proposed_posting or {}).get("lines", [])}
    seen.discard(None)
    return [role for role in ROLE_ORDER if role in seen] + sorted(seen - set(ROLE_ORDER))


def _current(records: list[SyncRecord], pick) -> str:
    """What the proposed posting has now, when a single record is being reviewed."""
    if len(records) != 1 or not records[0].proposed_posting:
        return ""
    return pick(records[0].proposed_posting) or ""


def _verdict(found: bool | None) -> str:
    return "unknown in Visma" if found is None else "inactive in Visma"


class RecordApproveForm(forms.Form):
    """Approve as proposed, or with a GL account per line role, dimension values and a customer for every record."""

    note = forms.CharField(
        required=False, max_length=500, label="Note for the audit trail",
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Why you approve (optional). Saved with your name on each record's trail.",
    )

    def __init__(self, *args, records: list[SyncRecord], **kwargs):
        super().__init__(*args, **kwargs)
        self.records = records
        self.tenants = {record.integration.tenant_id: record.integration.tenant for record in records}
        self.roles = _roles(records)
        for role in self.roles:
            now = _current(records, lambda posting: next(
                (line.get("account") for line in posting["lines"] if line.get("role") == role), ""))
            self.fields[f"account_{role}"] = forms.CharField(
                required=False, max_length=32, label=f"GL account for the {ROLE_LABELS.get(role, role)} line",
                help_text=f"Proposed: {now or 'none'}. Leave empty to keep it." if len(records) == 1
                else "Leave empty to keep each record's own account.",
            )
        segments = (
            DimensionValue.objects.filter(tenant_id__in=self.tenants).order_by("segment_id")
            .values_list("segment_id", "segment_name").distinct()
        )
        self.segments = dict(segments)
        for segment_id, segment_name in self.segments.items():
            self.fields[f"dimension_{segment_id}"] = forms.CharField(
                required=False, max_length=64, label=f"{segment_name or 'Dimension'} (segment {segment_id})",
                help_text="Set on every line. Leave empty to keep the proposed value.",
            )
        now = _current(records, lambda posting: posting.get("customer"))
        self.fields["customer"] = forms.CharField(
            required=False, max_length=64, label="Customer number",
            help_text=f"Proposed: {now or 'none'}. Leave empty to keep it." if len(records) == 1
            else "Leave empty to keep each record's own customer.",
        )
        self.fields["into_first_open_period"] = forms.BooleanField(
            required=False, label="Book in the first open financial period",
            help_text="For a posting whose own period is closed in Visma: booked on the first day of the first open "
                      "period after it.",
        )
        self.fields["booking_date"] = forms.DateField(
            required=False, label="Or book on this date",
            help_text="A day in a period open in Visma (YYYY-MM-DD). Leave empty to keep the transaction's date.",
        )
        self.order_fields([*(f"account_{role}" for role in self.roles),
                           *(f"dimension_{segment}" for segment in self.segments), "customer",
                           "into_first_open_period", "booking_date", "note"])

    def clean(self):
        cleaned = super().clean()
        for tenant in self.tenants.values():
            mirror = ReferenceMirror(tenant)
            for role in self.roles:
                number = cleaned.get(f"account_{role}")
                if number and mirror.accounts.get(number) is not True:
                    self.add_error(f"account_{role}",
                                   f"GL account {number} is {_verdict(mirror.accounts.get(number))} ({tenant.slug}).")
            for segment_id in self.segments:
                value = cleaned.get(f"dimension_{segment_id}")
                found = mirror.dimensions.get((str(segment_id), value)) if value else True
                if found is not True:
                    self.add_error(f"dimension_{segment_id}",
                                   f"Value {value} of segment {segment_id} is {_verdict(found)} ({tenant.slug}).")
            customer = cleaned.get("customer")
            if customer and not (mirror.customer(customer) or (False,))[0]:
                self.add_error("customer", f"Customer {customer} is unknown or inactive in Visma ({tenant.slug}).")
        if cleaned.get("booking_date") and cleaned.get("into_first_open_period"):
            self.add_error("booking_date", "Choose a date or the first open period, not both.")
        elif cleaned.get("booking_date"):
            self._require_open_period(cleaned["booking_date"])
        if not self.errors:
            self._require_every_line_accounted()
        return cleaned

    def _require_open_period(self, day) -> None:
        calendars = {tenant_id: FinancialCalendar(tenant) for tenant_id, tenant in self.tenants.items()}
        for record in self.records:
            document = (record.proposed_posting or {}).get("document", "journal")
            problem = calendars[record.integration.tenant_id].problem(day, document)
            if problem:
                self.add_error("booking_date", f"{record.source_id}: {problem}")

    def _require_every_line_accounted(self) -> None:
        """Approving a posting that still has a line without an account would only flag it again."""
        for record in self.records:
            if not record.proposed_posting:
                continue
            posting = posting_apply_correction(Posting.from_json(record.proposed_posting), self.correction())
            for line in posting.lines:
                if not line.account and f"account_{line.role}" in self.fields:
                    self.add_error(f"account_{line.role}",
                                   f"{record.source_id} has no GL account on its {line.role} line: enter one.")

    def correction(self) -> dict | None:
        """The correction in the shape `posting_apply_correction` takes; None when nothing was changed."""
        data = self.cleaned_data
        accounts = {role: data[f"account_{role}"] for role in self.roles if data.get(f"account_{role}")}
        dimensions = {str(s): data[f"dimension_{s}"] for s in self.segments if data.get(f"dimension_{s}")}
        correction = {}
        if accounts:
            correction["accounts"] = accounts
        if dimensions:
            correction["dimensions"] = dimensions
        if data.get("customer"):
            correction["customer"] = data["customer"]
        if data.get("booking_date"):
            correction["date"] = data["booking_date"].isoformat()
        return correction or None


class RecordRejectForm(forms.Form):
    # Surrounding blanks are stripped, so a reason of only spaces is no reason.
    reason = forms.CharField(
        max_length=1000, label="Why it must never be posted",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Saved with your name on each record's trail.",
    )


class RecordReplayForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=1000, label="Why it goes through again",
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="E.g. “mapping rule fixed”. It will be mapped and validated afresh before anything is written.",
    )


class RecordDuplicateCheckedForm(forms.Form):
    note = forms.CharField(
        max_length=1000, label="What was done",
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="E.g. “journal 000014 reversed in Visma” or “not a duplicate: 000014 is another payment”.",
    )
