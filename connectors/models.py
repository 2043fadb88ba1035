"""Tenants, their connections to each system, integrations, inbound events, sync runs and cursors."""
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from fernet_fields import EncryptedTextField

from .fields import EncryptedJSONField


class System(models.TextChoices):
    VISMA = "visma", "Visma.net ERP"
    PAYPAL = "paypal", "PayPal"
    STRIPE = "stripe", "Stripe"
    SQUARE = "square", "Square"
    AIRBASE = "airbase", "Airbase"
    ADOBE_COMMERCE = "adobe_commerce", "Adobe Commerce"


PARTNER_SYSTEMS = [choice for choice in System.choices if choice[0] != System.VISMA]


# The Visma documents we write, by the kind a tenant's own-number setting names.
VISMA_DOCUMENT_KINDS = (
    "journal", "customer_invoice", "customer_payment", "supplier_invoice", "supplier_payment", "customer", "supplier",
    "credit_note", "customer_refund",
)


def visma_own_numbers_default() -> list[str]:
    """Own numbers for what no law numbers: not customer invoices nor credit notes (a sequential series: EU VAT
    Directive 2006/112/EC art. 226(2), a credit note amending an invoice is one; Norway's bokføringsforskriften
    § 5-1-1), not customers or suppliers (the company's choice)."""
    return ["journal", "customer_payment", "customer_refund", "supplier_invoice", "supplier_payment"]


def time_zone_validate(value) -> None:
    """An IANA time zone name (Europe/Oslo), as the zoneinfo database knows it."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone name, e.g. Europe/Oslo") from exc


def visma_own_numbers_validate(value) -> None:
    if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
        raise ValidationError("a list of document kinds, e.g. [\"journal\", \"supplier_invoice\"]")
    unknown = [kind for kind in value if kind not in VISMA_DOCUMENT_KINDS]
    if unknown:
        raise ValidationError(
            f"unknown document kind(s) {', '.join(unknown)}; known: {', '.join(VISMA_DOCUMENT_KINDS)}"
        )
    if len(set(value)) != len(value):
        raise ValidationError("each document kind once")


class Tenant(models.Model):
    """A company whose Visma.net ERP books this installation keeps in step."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    visma_own_numbers = models.JSONField(
        default=visma_own_numbers_default, blank=True, validators=[visma_own_numbers_validate],
        help_text="Document kinds whose Visma number is our marker (overrideNumberSeries), so Visma itself refuses a "
                  "second one: journal, customer_invoice, customer_payment, supplier_invoice, supplier_payment, "
                  "customer, supplier. The series must allow manual numbers in Visma.",
    )
    time_zone = models.CharField(
        max_length=64, default="Europe/Oslo", validators=[time_zone_validate],
        help_text="IANA name: a transaction is booked on its date in this zone (00:30 local on the 1st is in the new "
                  "month).",
    )
    visma_release = models.BooleanField(
        "release documents in Visma", default=True,
        help_text="Release each document in Visma after creating it; off: documents are created on hold, for review "
                  "and release in Visma.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Connection(models.Model):
    """One tenant's credentials for one system; secrets and the cached token are stored encrypted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connections")
    system = models.CharField(max_length=32, choices=System.choices)
    base_url = models.URLField(max_length=500, help_text="API base, e.g. https://api.finance.visma.net")
    token_url = models.URLField(max_length=500, blank=True, help_text="OAuth token endpoint, where the system has one")
    credentials = EncryptedJSONField(help_text="Write-only: client ids, secrets, keys, webhook secrets.")
    access_token = EncryptedTextField(null=True, blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    hourly_call_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls per hour the system allows this connection; empty: no budget."
    )
    # Set when the system refused our credentials for good (Square: the refresh token was refused, or the seller
    # revoked access): calls stop until new credentials are saved; cleared by the first call that works again.
    authorization_problem = models.TextField(blank=True, default="", editable=False)
    authorization_problem_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__slug", "system"]
        constraints = [models.UniqueConstraint(fields=["tenant", "system"], name="one_connection_per_system")]

    def __str__(self) -> str:
        return f"{self.tenant.slug} · {self.get_system_display()}"


class Integration(models.Model):
    """A tenant's Visma.net ERP paired with one partner system: what moves, how often, with which settings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="integrations")
    kind = models.CharField(max_length=32, choices=PARTNER_SYSTEMS)
    visma_connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    partner_connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True, help_text="Per-kind settings, validated on save.")
    poll_minutes = models.JSONField(
        default=dict, blank=True, help_text='Poll cadence per stream in minutes, e.g. {"captures": 15}.'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__slug", "kind"]
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="one_integration_per_kind")]

    def __str__(self) -> str:
        return f"{self.tenant.slug} · {self.get_kind_display()} ↔ Visma"

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.kind}/{self.id}/"


class InboundEvent(models.Model):
    """A verified webhook delivery, stored raw before it is acknowledged; unique on the vendor's event id."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (no stream for this event type)"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="inbound_events")
    kind = models.CharField(
        max_length=32, choices=System.choices, help_text="The system that sent it: the partner, or Visma itself."
    )
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=255, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # The inbox is the queue: when a worker was handed the event (a lease; taken again once it runs out).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "event_id"], name="inbound_event_once"),
        ]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.event_id}"


# Refused deliveries are counted per window of this length (a person reads "412 refused 10:00–10:10").
REFUSAL_WINDOW_SECONDS = 600


class WebhookRefusal(models.Model):
    """Deliveries refused for one integration, for one kind of reason, in one ten-minute window: a count, so a
    flood of bad requests writes a bounded number of rows. The first refusal of a window is also audited."""

    class Reason(models.TextChoices):
        NO_SECRET = "no_secret", "No signing secret configured"
        NO_VERIFIER = "no_verifier", "No verifier for this system"
        UNSIGNED = "unsigned", "Signature missing"
        BAD_SIGNATURE = "bad_signature", "Bad signature"
        STALE = "stale", "Sent outside the time tolerance"
        CERTIFICATE = "certificate", "Certificate not accepted"
        MALFORMED = "malformed", "Malformed delivery"
        TOO_LARGE = "too_large", "Body too large"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="webhook_refusals")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    window_start = models.DateTimeField()
    deliveries = models.PositiveIntegerField(default=0)
    last_detail = models.TextField(blank=True, help_text="Why the latest delivery counted here was refused.")
    last_remote_addr = models.CharField(max_length=64, blank=True)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        ordering = ["-window_start", "integration", "reason"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "reason", "window_start"], name="one_refusal_count_per_window"),
        ]

    def __str__(self) -> str:
        return (f"{self.deliveries} deliveries refused {self.window_start:%Y-%m-%d %H:%M}–{self.window_end:%H:%M} UTC: "
                f"{self.get_reason_display().lower()}")

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(seconds=REFUSAL_WINDOW_SECONDS)


class SyncRun(models.Model):
    """One pass of one stream: what it read, how far, and what became of it."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual (sync command)"
        WEBHOOK = "webhook", "Webhook"
        BACKFILL = "backfill", "Backfill"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="sync_runs")
    stream = models.CharField(max_length=64)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    fetched = models.PositiveIntegerField(default=0)
    posted = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    waiting = models.PositiveIntegerField(default=0, help_text="Waiting for another record, or for the source.")
    retrying = models.PositiveIntegerField(default=0, help_text="A transient failure; tried again by itself.")
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    published_until = models.DateTimeField(
        null=True, blank=True,
        help_text="The source had published only up to here: the run read up to it and the cursor stopped there.",
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["integration", "stream", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.integration} {self.stream} {self.started_at:%Y-%m-%d %H:%M}"

    def published_note(self) -> str:
        """Where a run stopped at what the source had published, in words for a summary; "" for a whole window."""
        if self.published_until is None:
            return ""
        source = System(self.integration.kind).label if self.integration.kind in System.values else "the source"
        return f"read up to {self.published_until:%Y-%m-%d %H:%M:%S} UTC, what {source} has published"


class SyncCursor(models.Model):
    """How far a stream has read; it moves only after every record of a window is stored."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=64)
    position = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "stream"], name="one_cursor_per_stream")]

    def __str__(self) -> str:
        return f"{self.integration} {self.stream} @ {self.position}"


class HttpExchange(models.Model):
    """One outbound call to a system, with redacted bodies, kept for the record it served."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="exchanges")
    sync_record = models.ForeignKey(
        "audit.SyncRecord", on_delete=models.SET_NULL, null=True, blank=True, related_name="exchanges"
    )
    method = models.CharField(max_length=8)
    url = models.URLField(max_length=1000)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["connection", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.status_code}"


class CallBudgetWindow(models.Model):
    """Calls made by all workers for one connection in one clock hour (the shared rate limit)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="budget_windows")
    window_start = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls allowed this clock hour (ours or the system's); none when neither says."
    )
    remaining_reported = models.IntegerField(null=True, blank=True, help_text="Last X-RateLimit-Remaining seen.")
    remaining_resets_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the system's own window turns over (X-RateLimit-Reset beside the last Remaining seen).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "window_start"], name="one_budget_window_per_hour"),
            models.CheckConstraint(condition=Q(calls__gte=0), name="budget_calls_not_negative"),
        ]


class WorkLease(models.Model):
    """Periodic work that must not run twice at once (the due-records sweep): whoever holds it, until when."""

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=100, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.held_until}"
