"""The review queue (flagged records: approve, correct, reject, replay), the audit trail, and the admin dashboard."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.text import Truncator
from django.utils.timezone import localtime

from connectors.tasks import record_advance_later

from .forms import RecordApproveForm, RecordDuplicateCheckedForm, RecordRejectForm, RecordReplayForm
from .models import AuditEntry, RecordStatus, SyncRecord
from .selectors import json_pretty, money_display, posting_table, record_review
from .services import (
    Actor,
    TransitionRefused,
    record_approve,
    record_approve_into_open_period,
    record_duplicate_resolve,
    record_reject,
    record_replay,
)

STATUS_COLOURS = {
    RecordStatus.POSTED: "#1e7e34",
    RecordStatus.FLAGGED: "#b45309",
    RecordStatus.APPROVED: "#1d4ed8",
    RecordStatus.REJECTED: "#6b7280",
    RecordStatus.FAILED: "#b91c1c",
    RecordStatus.RETRYING: "#a16207",
    RecordStatus.WAITING: "#0e7490",
}


# Visma's statuses of a document created but not released (swagger status enums); anything else is released.
AWAITING_RELEASE = frozenset({"Hold", "Balanced"})


def record_release_state(record) -> str:
    """What became of a posted document in Visma, in Visma's words: "created, awaiting release (Hold)" or
    "released (Open)"; empty when the target keeps no such status."""
    if record.status != RecordStatus.POSTED or not record.target_status:
        return ""
    if record.target_status in AWAITING_RELEASE:
        return f"created, awaiting release ({record.target_status})"
    return f"released ({record.target_status})"


def status_badge(status: str, label: str):
    return format_html(
        '<span class="record-status" style="color:#fff;background:{};padding:1px 6px;border-radius:8px;'
        'white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(status, "#475569"), label,
    )


class RecordStatusFilter(admin.SimpleListFilter):
    """The review queue opens on flagged records; "All" shows every status, and so does a search by id."""

    title = "status"
    parameter_name = "status"
    ALL = "all"
    # Posted records whose marker a second document in the target carries: finance checks them.
    DUPLICATES = "duplicates"

    def __init__(self, request, params, model, model_admin):
        # Someone looking a record up by its id wants it whatever its status.
        self.default = self.ALL if request.GET.get("q") else RecordStatus.FLAGGED
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [(self.ALL, "All"), *RecordStatus.choices, (self.DUPLICATES, "Possible duplicates in the target")]

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == self.ALL:
            return queryset
        if self.value() == self.DUPLICATES:
            return queryset.exclude(duplicate_targets=[])
        return queryset.filter(status=self.value())


@admin.register(SyncRecord)
class SyncRecordAdmin(admin.ModelAdmin):
    """Finance's review queue. Rows change only through the audit services, never by editing."""

    list_display = ["source_id", "integration_stream", "amount_display", "status_display", "reasons_display",
                    "updated"]
    list_display_links = ["source_id"]
    list_filter = [RecordStatusFilter, "integration__tenant", "integration", "stream"]
    list_select_related = ["integration__tenant"]
    search_fields = ["source_id", "target_id", "posting_marker"]
    date_hierarchy = "updated_at"
    actions = ["approve_records", "reject_records", "replay_records"]
    fieldsets = [
        ("Record", {"fields": ["integration_display", "stream", "source_id", "status_display", "amount_display",
                               "source_updated_at"]}),
        ("In the target system", {"fields": ["target_kind", "target_id", "release_display", "posting_marker",
                                             "write_attempted",
                                             "posting_started_at", "duplicate_targets"]}),
        ("Waiting", {"fields": ["waiting_on_stream", "waiting_on_source_id", "waiting_since"],
                     "classes": ["collapse"]}),
        ("Retries", {"fields": ["attempts", "next_attempt_at", "last_error"], "classes": ["collapse"]}),
        ("Times", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    readonly_fields = ["integration_display", "status_display", "amount_display", "release_display"]
    change_form_template = "admin/audit/syncrecord/change_form.html"

    # --- nobody edits a record by hand --------------------------------------------------------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request, obj=None):
        return request.user.has_perm("audit.review_syncrecord")

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm("audit.replay_syncrecord")

    # --- columns --------------------------------------------------------------------------------------------

    @admin.display(description="integration")
    def integration_display(self, record):
        # Plain text: finance may review records without being allowed to open integrations.
        return str(record.integration)

    @admin.display(description="integration / stream", ordering="integration")
    def integration_stream(self, record):
        return format_html('{}<br><span class="quiet">{}</span>', record.integration, record.stream)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, record):
        return format_html('<span style="white-space:nowrap">{}</span>', money_display(record.amount, record.currency))

    @admin.display(description="status", ordering="status")
    def status_display(self, record):
        badge = status_badge(record.status, record.get_status_display())
        release = record_release_state(record)
        return format_html('{}<br><span class="quiet">{}</span>', badge, release) if release else badge

    @admin.display(description="in Visma")
    def release_display(self, record):
        return record_release_state(record)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, record):
        return format_html('<span style="white-space:nowrap">{}</span>',
                           date_format(localtime(record.updated_at), "Y-m-d H:i"))

    @admin.display(description="reasons")
    def reasons_display(self, record):
        reasons = [str(reason) for reason in record.reasons or []]
        if record.duplicate_targets:
            reasons.insert(0, f"possible duplicate in the target: {', '.join(record.duplicate_targets)} also carry "
                              f"its marker {record.posting_marker}")
        elif record.status == RecordStatus.WAITING:
            reasons = [record.last_error]
        if not reasons:
            return ""
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        return format_html('<span style="display:inline-block;min-width:12em;max-width:36em">{}{}</span>',
                           Truncator(reasons[0]).chars(110), more)

    # --- the review screen ----------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, unquote(object_id))
        if record is not None and self.has_view_permission(request, record):
            extra_context = {**(extra_context or {}), "review": record_review(record, user=request.user),
                             "review_next": request.get_full_path()}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        review = [
            path("review/approve/", self.admin_site.admin_view(self.approve_view), name="audit_syncrecord_approve"),
            path("review/reject/", self.admin_site.admin_view(self.reject_view), name="audit_syncrecord_reject"),
            path("review/replay/", self.admin_site.admin_view(self.replay_view), name="audit_syncrecord_replay"),
            path("review/duplicate-checked/", self.admin_site.admin_view(self.duplicate_checked_view),
                 name="audit_syncrecord_duplicate_checked"),
        ]
        return review + super().get_urls()

    # --- actions: each one opens its form page for the selected records -------------------------------------

    @admin.action(description="Approve selected records (optionally with corrections)…", permissions=["review"])
    def approve_records(self, request, queryset):
        return self._to_form_page("audit_syncrecord_approve", request, queryset)

    @admin.action(description="Reject selected records (with a reason)…", permissions=["review"])
    def reject_records(self, request, queryset):
        return self._to_form_page("audit_syncrecord_reject", request, queryset)

    @admin.action(description="Replay selected records…", permissions=["replay"])
    def replay_records(self, request, queryset):
        return self._to_form_page("audit_syncrecord_replay", request, queryset)

    def _to_form_page(self, url_name, request, queryset):
        ids = ",".join(str(pk) for pk in sorted(queryset.values_list("pk", flat=True)))
        url = reverse(f"admin:{url_name}", current_app=self.admin_site.name)
        return HttpResponseRedirect(f"{url}?{urlencode({'ids': ids, 'next': request.get_full_path()})}")

    # --- the form pages -------------------------------------------------------------------------------------

    def approve_view(self, request):
        if not self.has_review_permission(request):
            raise PermissionDenied
        records = self._records(request)
        form = RecordApproveForm(self._posted(request), records=records)
        if request.method == "POST" and records and form.is_valid():
            correction, note = form.correction(), form.cleaned_data["note"]
            into_open_period = form.cleaned_data.get("into_first_open_period")
            for record in records:
                try:
                    if into_open_period:
                        record = record_approve_into_open_period(record, user=request.user,
                                                                 corrected_posting=correction, note=note)
                    else:
                        record = record_approve(record, user=request.user, corrected_posting=correction, note=note)
                except TransitionRefused as refused:
                    self.message_user(request, f"{record.source_id}: {refused}", messages.ERROR)
                    continue
                record_advance_later(record)
                how = "approved with corrections" if correction else "approved"
                self.message_user(request, f"{record.source_id}: {how}; a worker will post it.", messages.SUCCESS)
            return self._back(request, records)
        return self._form_page(request, "Approve", records, form)

    def reject_view(self, request):
        if not self.has_review_permission(request):
            raise PermissionDenied
        records = self._records(request)
        form = RecordRejectForm(self._posted(request))
        if request.method == "POST" and records and form.is_valid():
            for record in records:
                try:
                    record = record_reject(record, user=request.user, reason=form.cleaned_data["reason"])
                except TransitionRefused as refused:
                    self.message_user(request, f"{record.source_id}: {refused}", messages.ERROR)
                    continue
                self.message_user(request, f"{record.source_id}: rejected; it will never be posted.", messages.SUCCESS)
            return self._back(request, records)
        return self._form_page(request, "Reject", records, form)

    def replay_view(self, request):
        if not self.has_replay_permission(request):
            raise PermissionDenied
        records = self._records(request)
        form = RecordReplayForm(self._posted(request))
        if request.method == "POST" and records and form.is_valid():
            reason = form.cleaned_data["reason"] or "replayed from the review queue"
            for record in records:
                try:
                    record = record_replay(record, actor=Actor.of(request.user), reason=reason)
                except TransitionRefused as refused:
                    self.message_user(request, f"{record.source_id}: {refused}", messages.ERROR)
                    continue
                record_advance_later(record)
                self.message_user(request, f"{record.source_id}: sent through the pipeline again.", messages.SUCCESS)
            return self._back(request, records)
        return self._form_page(request, "Replay", records, form)

    def duplicate_checked_view(self, request):
        if not self.has_review_permission(request):
            raise PermissionDenied
        records = self._records(request)
        form = RecordDuplicateCheckedForm(self._posted(request))
        if request.method == "POST" and records and form.is_valid():
            for record in records:
                try:
                    record_duplicate_resolve(record, user=request.user, note=form.cleaned_data["note"])
                except TransitionRefused as refused:
                    self.message_user(request, f"{record.source_id}: {refused}", messages.ERROR)
                    continue
                self.message_user(request, f"{record.source_id}: possible duplicate marked as checked.",
                                  messages.SUCCESS)
            return self._back(request, records)
        return self._form_page(request, "Mark checked", records, form)

    @staticmethod
    def _posted(request):
        # An empty POST (approve as proposed) is still a submission: bind the form to it.
        return request.POST if request.method == "POST" else None

    def _records(self, request) -> list[SyncRecord]:
        ids = [part for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
        return list(self.get_queryset(request).filter(pk__in=ids).select_related("integration__tenant")
                    .order_by("pk"))

    def _next_url(self, request, records) -> str:
        """Where the user came from (the record or the filtered queue), if it is a page of this site."""
        target = request.GET.get("next", "")
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                      require_https=request.is_secure()):
            return target
        if len(records) == 1:
            return reverse("admin:audit_syncrecord_change", args=[records[0].pk])
        return reverse("admin:audit_syncrecord_changelist")

    def _back(self, request, records):
        return HttpResponseRedirect(self._next_url(request, records))

    def _form_page(self, request, verb, records, form):
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} {len(records)} record{'s' if len(records) != 1 else ''}",
            "verb": verb,
            "opts": self.model._meta,
            "records": [
                {"record": record, "amount": money_display(record.amount, record.currency),
                 "posting": posting_table(record.proposed_posting)}
                for record in records
            ],
            "form": form,
            "cancel_url": self._next_url(request, records),
        }
        return TemplateResponse(request, "admin/audit/syncrecord/review_action.html", context)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The append-only trail: searchable, never added to, changed or deleted here, not even by a superuser."""

    list_display = ["created_at", "actor", "action", "record_link", "transition", "reason_short", "source_id",
                    "target_id", "tenant"]
    list_filter = ["action", "tenant", "to_status"]
    list_select_related = ["tenant", "sync_record"]
    search_fields = ["source_id", "target_id"]
    date_hierarchy = "created_at"
    fields = ["created_at", "actor", "user", "action", "tenant", "integration", "sync_record", "from_status",
              "to_status", "reason", "source_id", "target_id", "details_pretty"]
    readonly_fields = ["details_pretty"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="record", ordering="sync_record")
    def record_link(self, entry):
        if entry.sync_record_id is None:
            return ""
        url = reverse("admin:audit_syncrecord_change", args=[entry.sync_record_id])
        return format_html('<a href="{}">{} {}</a>', url, entry.sync_record.stream, entry.sync_record.source_id)

    @admin.display(description="from → to")
    def transition(self, entry):
        if not entry.to_status:
            return ""
        return f"{entry.from_status or '∅'} → {entry.to_status}"

    @admin.display(description="why")
    def reason_short(self, entry):
        return Truncator(entry.reason).chars(100)

    @admin.display(description="details")
    def details_pretty(self, entry):
        return format_html("<pre>{}</pre>", json_pretty(entry.details)) if entry.details else ""

