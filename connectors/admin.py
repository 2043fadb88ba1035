"""The operator's screens: tenants, connections (credentials write-only), integrations, and what ran (read-only)."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django_q.models import Schedule

from audit.models import RecordStatus
from audit.selectors import json_pretty
from audit.services import Actor, configuration_audit

from . import registry
from .models import (
    Connection,
    HttpExchange,
    InboundEvent,
    Integration,
    SyncCursor,
    SyncRun,
    System,
    Tenant,
    WebhookRefusal,
)
from .pipeline import inbound_event_process
from .services import connection_save, integration_clean, integration_save


class ReadOnlyAdmin(admin.ModelAdmin):
    """What the platform wrote about its own work: looked at, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_active", "time_zone", "visma_release", "visma_own_numbers", "created_at"]
    list_filter = ["is_active", "visma_release"]
    search_fields = ["slug", "name"]
    actions = ["refresh_reference_data"]

    @admin.action(description="Refresh Visma reference data now", permissions=["change"])
    def refresh_reference_data(self, request, queryset):
        from mappings.reference import reference_data_refresh

        for tenant in queryset:
            try:
                refresh = reference_data_refresh(tenant)
            except Exception as exc:  # the operator sees each tenant's outcome, the others still run
                self.message_user(request, f"{tenant.slug}: Visma could not be read: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{tenant.slug}: {refresh.accounts} GL accounts, {refresh.dimension_values} dimension values, "
                f"{refresh.customers} customers, {refresh.suppliers} suppliers, {refresh.financial_periods} "
                "financial periods read; "
                f"{refresh.invalid_rules} mapping rule(s) invalid",
                messages.SUCCESS,
            )


# --- connections: credentials go in, never come out -------------------------------------------------------------


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value, not even the one just typed when the form comes back with errors."""

    def format_value(self, value):
        return None


def https_by_default(db_field, **kwargs):
    """URLs typed without a scheme are taken as https (Django 6's default, chosen now)."""
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


class ConnectionForm(forms.ModelForm):
    credentials_json = forms.CharField(
        label="Credentials", required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 6, "cols": 60, "autocomplete": "off", "spellcheck": "false",
                                        "placeholder": '{"client_id": "…", "client_secret": "…"}'}),
        help_text="Write-only, as a JSON object. Empty: the stored credentials stay as they are. Filled: the keys "
                  "you enter are set and the others kept; a key set to null is removed.",
    )
    replace_credentials = forms.BooleanField(
        required=False, label="Replace all credentials",
        help_text="Ticked: the JSON above becomes the whole set of credentials; keys not in it are dropped.",
    )

    class Meta:
        model = Connection
        fields = ["tenant", "system", "base_url", "token_url", "hourly_call_budget"]
        formfield_callback = https_by_default

    def clean_credentials_json(self):
        text = self.cleaned_data["credentials_json"].strip()
        if not text:
            return None
        try:
            entered = json.loads(text)
        except ValueError as exc:
            # The position only: the message must not echo the secret back.
            raise ValidationError(f"Not valid JSON (line {exc.lineno}, column {exc.colno}); nothing was changed.")
        if not isinstance(entered, dict) or not all(isinstance(key, str) and key for key in entered):
            raise ValidationError('Credentials must be a JSON object of named keys, e.g. {"client_secret": "…"}.')
        return entered

    def clean(self):
        cleaned = super().clean()
        entered = cleaned.get("credentials_json")
        stored = dict(self.instance.credentials or {}) if self.instance.pk else {}
        if entered is None:
            credentials = stored
        elif cleaned.get("replace_credentials"):
            credentials = {key: value for key, value in entered.items() if value is not None}
        else:
            credentials = {key: value for key, value in {**stored, **entered}.items() if value is not None}
        system = cleaned.get("system")
        if system and "credentials_json" not in self.errors:
            spec = registry.kind_spec(system)
            unknown = sorted(set(entered or {}) - {*spec.required_credentials, *spec.optional_credentials})
            missing = [key for key in spec.required_credentials if not credentials.get(key)]
            if unknown:
                self.add_error("credentials_json", f"{System(system).label} has no credential {', '.join(unknown)}; "
                               f"known: {', '.join((*spec.required_credentials, *spec.optional_credentials))}.")
            elif missing:
                self.add_error("credentials_json", f"{System(system).label} needs {', '.join(missing)}: "
                                                   "add the missing keys to the JSON.")
        self.credentials = credentials
        # Names only, for the audit trail: which keys were given a value and which were dropped.
        self.keys_set = sorted(key for key in (entered or {}) if key in credentials)
        self.keys_removed = sorted(set(stored) - set(credentials))
        return cleaned

    def save(self, commit=True):
        self.instance.credentials = self.credentials
        return super().save(commit)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    """Credentials are typed in and stored encrypted; pages show which keys are set, never their values."""

    form = ConnectionForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["__str__", "tenant", "system", "base_url", "credential_keys", "token_expires_at",
                    "hourly_call_budget", "authorization"]
    list_filter = ["system", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "tenant__name", "base_url"]
    fieldsets = [
        (None, {"fields": ["tenant", "system", "base_url", "token_url", "hourly_call_budget"]}),
        ("Credentials", {"fields": ["credential_keys", "credentials_json", "replace_credentials"]}),
        ("Token", {"fields": ["token_expires_at", "authorization"]}),
        ("Times", {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = ["credential_keys", "token_expires_at", "authorization", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        connection_save(obj)
        changes = [f"set {', '.join(form.keys_set)}"] if form.keys_set else []
        if form.keys_removed:
            changes.append(f"removed {', '.join(form.keys_removed)}")
        if changes:
            # Key names only: the trail says who touched which secret, never what it is.
            configuration_audit(
                tenant=obj.tenant, actor=Actor.of(request.user),
                reason=f"credentials of {obj} {'changed' if change else 'set'}: {'; '.join(changes)}",
                details={"connection": obj.pk, "keys_set": form.keys_set, "keys_removed": form.keys_removed},
            )

    @admin.display(description="authorization")
    def authorization(self, connection):
        return authorization_shown(connection)

    @admin.display(description="credential keys set")
    def credential_keys(self, connection):
        keys = sorted((connection.credentials or {}).keys())
        if not connection.system:
            return ", ".join(keys) or "none"
        missing = [key for key in registry.kind_spec(connection.system).required_credentials if key not in keys]
        text = ", ".join(keys) or "none"
        return f"{text} (missing: {', '.join(missing)})" if missing else text


def authorization_shown(connection: Connection | None) -> str:
    """What the system said when it refused the connection's credentials for good (Square: "the seller must
    re-authorize in Square"), or "OK"; calls stop until new credentials are saved."""
    if connection is None or not connection.authorization_problem:
        return "OK"
    since = connection.authorization_problem_at
    when = f" (since {timezone.localtime(since):%Y-%m-%d %H:%M})" if since else ""
    saved = connection.updated_at and since and connection.updated_at > since
    after = " — new credentials saved since: the next call tries them" if saved else ""
    return format_html('<strong style="color:#ba2121">{}</strong>{}{}', connection.authorization_problem, when, after)


# --- integrations ---------------------------------------------------------------------------------------------------


INTEGRATION_FORM_FIELDS = ["tenant", "kind", "visma_connection", "partner_connection", "enabled", "settings",
                           "poll_minutes"]


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = INTEGRATION_FORM_FIELDS

    def clean(self):
        # The checks integration_save makes, here so that they show beside the field instead of as a crash.
        cleaned = super().clean()
        if not cleaned.get("kind") or not cleaned.get("tenant"):
            return cleaned
        candidate = Integration(**{name: cleaned.get(name) for name in INTEGRATION_FORM_FIELDS})
        try:
            integration_clean(candidate)
        except ValidationError as exc:
            for field, messages_ in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages_)
            return cleaned
        cleaned["settings"], cleaned["poll_minutes"] = candidate.settings, candidate.poll_minutes
        return cleaned


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    """Saving goes through integration_save: settings validated, poll schedules brought in line."""

    form = IntegrationForm
    list_display = ["__str__", "tenant", "kind", "enabled", "webhook_url", "flagged_records", "authorization"]
    list_filter = ["kind", "enabled", "tenant"]
    list_select_related = ["tenant", "partner_connection"]
    search_fields = ["tenant__slug", "tenant__name"]
    fieldsets = [
        (None, {"fields": ["tenant", "kind", "visma_connection", "partner_connection", "enabled"]}),
        ("Settings", {"fields": ["settings", "poll_minutes"]}),
        ("Running", {"fields": ["id", "webhook_url", "authorization", "poll_schedules", "created_at",
                                "updated_at"]}),
    ]
    readonly_fields = ["id", "webhook_url", "authorization", "poll_schedules", "created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            flagged_count=Count("records", filter=Q(records__status=RecordStatus.FLAGGED))
        )

    def save_model(self, request, obj, form, change):
        integration_save(obj)
        if form.changed_data:
            configuration_audit(
                tenant=obj.tenant, integration=obj, actor=Actor.of(request.user),
                reason=f"integration {obj} {'changed' if change else 'created'}: {', '.join(form.changed_data)}",
                details={"changed": form.changed_data, "enabled": obj.enabled},
            )

    @admin.display(description="webhook URL")
    def webhook_url(self, integration):
        return integration.webhook_path if integration.pk and integration.kind else ""

    @admin.display(description="authorization")
    def authorization(self, integration):
        return authorization_shown(integration.partner_connection if integration.partner_connection_id else None)

    @admin.display(description="flagged", ordering="flagged_count")
    def flagged_records(self, integration):
        if not integration.flagged_count:
            return 0
        url = reverse("admin:audit_syncrecord_changelist")
        return format_html('<a href="{}?status=flagged&integration__id__exact={}">{}</a>', url, integration.pk,
                           integration.flagged_count)

    @admin.display(description="poll schedules")
    def poll_schedules(self, integration):
        if not integration.pk:
            return ""
        schedules = Schedule.objects.filter(name__startswith=f"poll {integration.pk} ").order_by("name")
        return ", ".join(
            f"{schedule.name.rsplit(' ', 1)[-1]} every {schedule.minutes} min" for schedule in schedules
        ) or "none (disabled, or no streams yet)"


# --- what ran: read-only ---------------------------------------------------------------------------------------------


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "integration", "stream", "trigger", "status", "window_start", "window_end",
                    "published_until", "fetched", "posted", "flagged", "skipped", "failed", "finished_at"]
    list_filter = ["status", "trigger", "stream", "integration"]
    list_select_related = ["integration__tenant"]
    date_hierarchy = "started_at"


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    """A cursor can be moved back by whoever may change it (to re-read a window); never created by hand."""

    list_display = ["integration", "stream", "position", "updated_at"]
    list_filter = ["stream", "integration"]
    list_select_related = ["integration__tenant"]
    readonly_fields = ["integration", "stream", "updated_at"]

    def has_add_permission(self, request):
        return False


@admin.register(WebhookRefusal)
class WebhookRefusalAdmin(ReadOnlyAdmin):
    """Refused deliveries per integration, reason and ten minutes: "412 deliveries refused 10:00–10:10: bad signature"."""

    list_display = ["__str__", "integration", "reason", "deliveries", "last_at", "last_remote_addr"]
    list_filter = ["reason", "integration"]
    list_select_related = ["integration__tenant"]
    date_hierarchy = "window_start"
    fields = ["integration", "reason", "window_start", "deliveries", "first_at", "last_at", "last_remote_addr",
              "last_detail"]


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "integration", "event_type", "event_id", "status", "attempts", "error_short",
                    "processed_at"]
    list_filter = ["status", "event_type", "integration"]
    list_select_related = ["integration__tenant"]
    search_fields = ["event_id", "event_type"]
    date_hierarchy = "received_at"
    fields = ["integration", "event_id", "event_type", "status", "attempts", "error", "received_at", "processed_at",
              "headers_pretty", "body_pretty"]
    readonly_fields = ["headers_pretty", "body_pretty"]
    actions = ["process_again"]

    def has_process_permission(self, request, obj=None):
        # Processing again is a replay of what a vendor sent: the operator's replay permission covers it.
        return request.user.has_perm("connectors.view_inboundevent") and request.user.has_perm(
            "audit.replay_syncrecord"
        )

    @admin.action(description="Process selected events again", permissions=["process"])
    def process_again(self, request, queryset):
        for event in queryset.select_related("integration"):
            before = event.status
            event = inbound_event_process(event)
            if event.status == InboundEvent.Status.FAILED:
                self.message_user(request, f"{event}: failed again: {event.error}", messages.ERROR)
            elif before in (InboundEvent.Status.PROCESSED, InboundEvent.Status.IGNORED):
                self.message_user(request, f"{event}: already {before}; nothing to do.", messages.INFO)
            else:
                self.message_user(request, f"{event}: {event.status}.", messages.SUCCESS)

    @admin.display(description="error")
    def error_short(self, event):
        return Truncator(event.error).chars(80)

    @admin.display(description="headers")
    def headers_pretty(self, event):
        return format_html("<pre>{}</pre>", json_pretty(event.headers))

    @admin.display(description="body")
    def body_pretty(self, event):
        return format_html("<pre>{}</pre>", json_pretty(event.body))


@admin.register(HttpExchange)
class HttpExchangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "connection", "method", "url_short", "status_code", "duration_ms", "record_link"]
    list_filter = ["method", "status_code", "connection"]
    list_select_related = ["connection__tenant", "sync_record"]
    search_fields = ["url"]
    date_hierarchy = "created_at"
    fields = ["created_at", "connection", "sync_record", "method", "url", "status_code", "duration_ms", "error",
              "request_body_pretty", "response_body_pretty"]
    readonly_fields = ["request_body_pretty", "response_body_pretty"]

    @admin.display(description="url", ordering="url")
    def url_short(self, exchange):
        return Truncator(exchange.url).chars(90)

    @admin.display(description="record", ordering="sync_record")
    def record_link(self, exchange):
        if exchange.sync_record_id is None:
            return ""
        url = reverse("admin:audit_syncrecord_change", args=[exchange.sync_record_id])
        return format_html('<a href="{}">{}</a>', url, exchange.sync_record.source_id)

    @admin.display(description="request body")
    def request_body_pretty(self, exchange):
        return format_html("<pre>{}</pre>", json_pretty(exchange.request_body)) if exchange.request_body else ""

    @admin.display(description="response body")
    def response_body_pretty(self, exchange):
        return format_html("<pre>{}</pre>", json_pretty(exchange.response_body)) if exchange.response_body else ""
