"""State of the Visma.net ERP emulator, in the database so the web process and the workers share it."""
from decimal import Decimal

from django.db import models


class VismaClient(models.Model):
    """An integration client the emulated Visma Connect knows, approved for one company."""

    client_id = models.CharField(max_length=100, unique=True)
    client_secret = models.CharField(max_length=200)
    tenant_id = models.CharField(max_length=100, help_text="The company's tenant id, sent as tenant_id for a token.")
    company_id = models.CharField(max_length=50, help_text="The company id, sent in the ipp-company-id header.")
    token_lifetime_seconds = models.PositiveIntegerField(default=3600)
    hourly_call_budget = models.PositiveIntegerField(default=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client_id"]

    def __str__(self) -> str:
        return f"{self.client_id} → company {self.company_id}"


class VismaToken(models.Model):
    """An access token issued by the emulated Visma Connect; only its SHA-256 digest is kept."""

    token_digest = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(VismaClient, on_delete=models.CASCADE, related_name="tokens")
    tenant_id = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=300)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"token for {self.client.client_id} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class VismaDocument(models.Model):
    """One resource of one company (an account, a customer, a journal...) as the read DTO Visma returns."""

    company_id = models.CharField(max_length=50)
    collection = models.CharField(max_length=50)
    key = models.CharField(max_length=100)
    body = models.JSONField()
    etag = models.CharField(max_length=40)
    last_modified = models.DateTimeField()
    created = models.DateTimeField()

    class Meta:
        ordering = ["company_id", "collection", "id"]
        constraints = [
            models.UniqueConstraint(fields=["company_id", "collection", "key"], name="one_visma_document_per_key"),
        ]
        indexes = [models.Index(fields=["company_id", "collection", "last_modified"], name="visma_document_delta")]

    def __str__(self) -> str:
        return f"{self.collection} {self.key}"


class VismaCounter(models.Model):
    """The last number a company's numbering sequence handed out (customers, invoices, journal batches...)."""

    company_id = models.CharField(max_length=50)
    series = models.CharField(max_length=50)
    last_number = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company_id", "series"], name="one_visma_counter_per_series")]

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class VismaCallWindow(models.Model):
    """API calls one client made in one clock hour, against its hourly budget (Visma's fixed-window policy)."""

    client = models.ForeignKey(VismaClient, on_delete=models.CASCADE, related_name="call_windows")
    window_start = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-window_start"]
        constraints = [
            models.UniqueConstraint(fields=["client", "window_start"], name="one_visma_call_window_per_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.client.client_id} {self.window_start:%Y-%m-%d %H:00}: {self.calls} calls"


class VismaFault(models.Model):
    """A fault switched on for the next calls: answer 500, answer late, or edit the resource before a PUT."""

    class Kind(models.TextChoices):
        FAIL = "fail", "Answer with a server error"
        DELAY = "delay", "Answer late"
        STALE_PUT = "stale_put", "Edit the resource just before each PUT"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    remaining = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(default=500)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} × {self.remaining}"


class VismaGLBalance(models.Model):
    """Debit and credit totals posted to one general ledger account, in the company's base currency."""

    company_id = models.CharField(max_length=50)
    account_cd = models.CharField(max_length=20)
    debit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))
    credit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        ordering = ["company_id", "account_cd"]
        constraints = [
            models.UniqueConstraint(fields=["company_id", "account_cd"], name="one_visma_balance_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.account_cd}: {self.balance}"

    @property
    def balance(self) -> Decimal:
        return self.debit_total - self.credit_total
