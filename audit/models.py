"""The ledger of moved records (`SyncRecord` and its states) and the append-only audit trail."""
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class RecordStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    READY = "ready", "Ready to post"
    POSTING = "posting", "Posting"
    POSTED = "posted", "Posted"
    FLAGGED = "flagged", "Flagged for review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    RETRYING = "retrying", "Retrying"
    WAITING = "waiting", "Waiting for another record"
    FAILED = "failed", "Failed"


class SyncRecord(models.Model):
    """One source object (a capture, a refund, an invoice...) and what became of it in the target system."""

    integration = models.ForeignKey("connectors.Integration", on_delete=models.PROTECT, related_name="records")
    stream = models.CharField(max_length=64)
    source_id = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=RecordStatus.choices, default=RecordStatus.RECEIVED)

    # Vendor JSON is read with parse_float=Decimal; a Decimal is kept as its exact text.
    source_payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder,
                                      help_text="The source object as last read from its system.")
    source_updated_at = models.DateTimeField(null=True, blank=True)
    amount = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)

    proposed_posting = models.JSONField(
        null=True, blank=True, help_text="The document the pipeline would write, with accounts and dimensions."
    )
    corrected_posting = models.JSONField(
        null=True, blank=True, help_text="Accounts and dimensions a finance user set when approving."
    )
    reasons = models.JSONField(default=list, blank=True, help_text="Why the record is flagged or failed.")

    posting_marker = models.CharField(
        max_length=255, blank=True, help_text="What is written into the target so a re-post can be found first."
    )
    posting_started_at = models.DateTimeField(null=True, blank=True)
    write_attempted = models.BooleanField(
        default=False, help_text="A write may have reached the target: look it up by marker before writing again."
    )
    # Every change bumps it; a change made from a stale copy (another worker moved the record, or claimed its
    # write) is refused. The write's claim is the version it moved the record into `posting` with.
    version = models.PositiveIntegerField(default=0)
    # The sweep's claim on a batch: not picked again by another sweep before this time.
    sweep_claimed_until = models.DateTimeField(null=True, blank=True)

    waiting_on_stream = models.CharField(max_length=64, blank=True, help_text="The stream of the awaited record.")
    waiting_on_source_id = models.CharField(max_length=255, blank=True, help_text="The source id it waits for.")
    waiting_since = models.DateTimeField(null=True, blank=True)

    duplicate_targets = models.JSONField(
        default=list, blank=True,
        help_text="Documents in the target that carry this record's marker besides the one it posted: a person "
                  "checks them.",
    )
    target_kind = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    # Visma's status of what was written (Hold, Balanced, Open, Closed, Posted...): released or awaiting release.
    target_status = models.CharField(max_length=32, blank=True)

    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "stream", "source_id"], name="one_record_per_source_object"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "posting_started_at"]),
            models.Index(fields=["integration", "waiting_on_stream", "waiting_on_source_id"], name="record_waiting_on"),
        ]
        permissions = [
            ("review_syncrecord", "Can approve, correct and reject flagged records"),
            ("replay_syncrecord", "Can replay flagged and failed records"),
            ("export_syncrecord", "Can export synced records"),
        ]

    def __str__(self) -> str:
        return f"{self.stream} {self.source_id} ({self.status})"


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit entries are append-only: they cannot be updated.")

    def delete(self):
        raise PermissionError("Audit entries are append-only: they cannot be deleted.")


class AuditEntry(models.Model):
    """Append-only: who moved which record from what to what, why, with both systems' ids."""

    class Action(models.TextChoices):
        TRANSITION = "transition", "Status change"
        WEBHOOK_REJECTED = "webhook_rejected", "Webhook rejected"
        CORRECTED = "corrected", "Posting corrected"
        CONFIGURATION = "configuration", "Configuration"
        POSSIBLE_DUPLICATE = "possible_duplicate", "Possible duplicate in the target"
        DUPLICATE_RESOLVED = "duplicate_resolved", "Duplicate checked"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text='"system" or the user name.')
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, default=Action.TRANSITION)
    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.PROTECT, null=True, blank=True)
    integration = models.ForeignKey("connectors.Integration", on_delete=models.PROTECT, null=True, blank=True)
    sync_record = models.ForeignKey(
        SyncRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_entries"
    )
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    reason = models.TextField(blank=True)
    source_id = models.CharField(max_length=255, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        if self.action == self.Action.TRANSITION:
            return f"{self.source_id}: {self.from_status or '∅'} → {self.to_status}"
        return f"{self.get_action_display()}: {self.reason[:60]}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit entries are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries are append-only: they cannot be deleted.")
