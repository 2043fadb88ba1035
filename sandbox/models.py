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
    """A fault switched on for the next calls: answer 500, answer late, edit the resource before a PUT, lose the
    answer of a write that was done, or commit a write late."""

    class Kind(models.TextChoices):
        FAIL = "fail", "Answer with a server error"
        DELAY = "delay", "Answer late"
        STALE_PUT = "stale_put", "Edit the resource just before each PUT"
        LOSE_ANSWER = "lose_answer", "Do the write, then lose its answer (a 502, or an answer too late)"
        SLOW_COMMIT = "slow_commit", "Wait before the write is done (a lookup meanwhile finds nothing)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    remaining = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(default=500)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} × {self.remaining}"


class VismaSetting(models.Model):
    """A switch of the emulator's behaviour (e.g. field_lengths: refuse | truncate), shared by every process."""

    name = models.CharField(max_length=50, unique=True)
    value = models.JSONField()

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


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


# --- PayPal emulator -------------------------------------------------------------------------------------------
# One emulated PayPal merchant account: REST apps (client credentials), the objects its API serves, the rows of
# Transaction Search (published after a configurable lag), webhook subscriptions and the signing certificate.


class PayPalApp(models.Model):
    """A REST app of the emulated merchant: client credentials, token lifetime, reporting lag, search cap."""

    client_id = models.CharField(max_length=100, unique=True)
    client_secret = models.CharField(max_length=200)
    app_id = models.CharField(max_length=40)
    base_url = models.URLField(max_length=500, help_text="Where the emulator answers (links, certificate URL).")
    token_lifetime_seconds = models.PositiveIntegerField(default=32400)
    publication_delay_seconds = models.PositiveIntegerField(
        default=0, help_text="How late a transaction appears in Transaction Search (PayPal: up to 3 hours)."
    )
    search_result_limit = models.PositiveIntegerField(
        default=10000, help_text="More transactions than this in one search: RESULTSET_TOO_LARGE."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client_id"]

    def __str__(self) -> str:
        return self.client_id


class PayPalToken(models.Model):
    """An access token the emulator issued; only its SHA-256 digest is kept."""

    token_digest = models.CharField(max_length=64, unique=True)
    app = models.ForeignKey(PayPalApp, on_delete=models.CASCADE, related_name="tokens")
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"token for {self.app.client_id} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


class PayPalObject(models.Model):
    """A capture, refund, order or invoice, as the PayPal API returns it (links relative to the emulator)."""

    kind = models.CharField(max_length=20)
    object_id = models.CharField(max_length=40)
    body = models.JSONField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["kind", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["kind", "object_id"], name="one_paypal_object_per_id")]
        indexes = [models.Index(fields=["kind", "created_at"], name="paypal_object_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id}"


class PayPalTransaction(models.Model):
    """A balance-affecting row of Transaction Search; served only once `published_at` has passed."""

    transaction_id = models.CharField(max_length=40)
    event_code = models.CharField(max_length=8)
    initiated_at = models.DateTimeField()
    published_at = models.DateTimeField()
    detail = models.JSONField(help_text="The transaction_detail: transaction_info, payer_info, cart_info...")

    class Meta:
        ordering = ["initiated_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["transaction_id", "event_code"], name="one_paypal_transaction_row"),
        ]
        indexes = [models.Index(fields=["initiated_at"], name="paypal_transaction_initiated")]

    def __str__(self) -> str:
        return f"{self.event_code} {self.transaction_id}"


class PayPalIdempotentRequest(models.Model):
    """The answer given to a PayPal-Request-Id, replayed when the same key is sent again."""

    request_id = models.CharField(max_length=108)
    operation = models.CharField(max_length=100)
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request_id", "operation"], name="one_paypal_answer_per_request_id"),
        ]


class PayPalCertificate(models.Model):
    """The self-signed certificate the webhook sender signs with, served at /sandbox/paypal/certs/<cert id>."""

    cert_id = models.CharField(max_length=60, unique=True)
    certificate_pem = models.TextField()
    private_key_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.cert_id


class PayPalWebhook(models.Model):
    """A webhook subscription: the listener URL and the webhook id deliveries are signed for."""

    webhook_id = models.CharField(max_length=50, unique=True)
    url = models.URLField(max_length=500)
    event_types = models.JSONField(default=list, help_text='Event names, or ["*"] for all.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.url}"


class PayPalWebhookEvent(models.Model):
    """An event the emulated PayPal raised, and how many times it was delivered."""

    event_id = models.CharField(max_length=60, unique=True)
    event_type = models.CharField(max_length=60)
    body = models.JSONField()
    deliveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


# --- Stripe emulator -------------------------------------------------------------------------------------------
# Owned by the Stripe work (issue 5): an account per secret key, every API object as Stripe's JSON, and the
# Idempotency-Key replays.


class StripeAccount(models.Model):
    """A Stripe account the emulator knows: its secret key, and where its webhook endpoint sends events."""

    secret_key = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    default_currency = models.CharField(max_length=3, default="nok")
    # docs.stripe.com/currencies "Currency presentment and settlement": a charge in another currency than the
    # settlement currency is converted to it. Empty: the account settles every currency it charges in.
    settlement_currency = models.CharField(max_length=3, blank=True, default="")
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True, help_text="The endpoint's whsec_… signing secret.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["secret_key"]

    def __str__(self) -> str:
        return self.name or f"account {self.pk}"


class StripeObject(models.Model):
    """One API object (customer, invoice, charge, dispute, event...) of one account, as the JSON Stripe returns."""

    account = models.ForeignKey(StripeAccount, on_delete=models.CASCADE, related_name="stripe_objects")
    object_type = models.CharField(max_length=40)
    stripe_id = models.CharField(max_length=80, unique=True)
    body = models.JSONField()
    created = models.BigIntegerField(help_text="Unix seconds, as Stripe's `created`.")
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="Events: when the webhook sender sent it.")

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["account", "object_type", "created"], name="stripe_object_created")]

    def __str__(self) -> str:
        return self.stripe_id


class StripeIdempotentRequest(models.Model):
    """A POST answered under an Idempotency-Key: the same key gets the same answer (Stripe keeps them 24 h)."""

    account = models.ForeignKey(StripeAccount, on_delete=models.CASCADE, related_name="idempotent_requests")
    key = models.CharField(max_length=255)
    path = models.CharField(max_length=300)
    params_digest = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="one_stripe_answer_per_key")]

    def __str__(self) -> str:
        return self.key


class SquareMerchant(models.Model):
    """A Square seller the emulator knows: its locations' main one, its clock, webhook subscription, OAuth app and
    the switches a test turns (docs/square-sandbox.md says what each follows)."""

    merchant_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    main_location_id = models.CharField(max_length=32, blank=True)
    clock_offset_seconds = models.BigIntegerField(default=0, help_text="The merchant's clock is now + this.")
    # The webhook subscription (spec WebhookSubscription: notification_url, signature_key).
    notification_url = models.CharField(max_length=500, blank=True, help_text="The exact URL Square signs over.")
    signature_key = models.CharField(max_length=100, blank=True)
    # The OAuth application the seller authorized (spec ObtainTokenRequest client_id / client_secret).
    application_id = models.CharField(max_length=191)
    application_secret = models.CharField(max_length=200)
    # Switches.
    fee_later = models.BooleanField(default=True, help_text="Card-type payments get processing_fee[] on a later "
                                                            "update (docs/square.md §6), not at creation.")
    list_delay_seconds = models.PositiveIntegerField(default=0, help_text="A new payment or refund appears in "
                                                                          "lists only after this many seconds.")
    token_lifetime_days = models.PositiveIntegerField(default=30, help_text="OAuth access token lifetime "
                                                                            "(spec ObtainTokenResponse: 30 days).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.merchant_id})"


class SquareToken(models.Model):
    """An access token Square issued to the merchant: a personal one (never expires) or an OAuth one with its
    refresh token (code flow: multi-use; PKCE: single use, spec ObtainTokenResponse.refresh_token)."""

    PERSONAL, CODE, PKCE = "personal", "code", "pkce"

    merchant = models.ForeignKey(SquareMerchant, on_delete=models.CASCADE, related_name="tokens")
    flow = models.CharField(max_length=10, choices=[(PERSONAL, PERSONAL), (CODE, CODE), (PKCE, PKCE)])
    access_token = models.CharField(max_length=200, unique=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = models.CharField(max_length=200, blank=True, db_index=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_used_at = models.DateTimeField(null=True, blank=True, help_text="PKCE: the refresh token was spent.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"{self.flow} token {self.access_token[:12]}…"


class SquareAuthorizationCode(models.Model):
    """An authorization code from the seller's consent (single use, 5 minutes: Square's OAuth overview page)."""

    merchant = models.ForeignKey(SquareMerchant, on_delete=models.CASCADE, related_name="authorization_codes")
    code = models.CharField(max_length=191, unique=True)
    code_challenge = models.CharField(max_length=200, blank=True, help_text="PKCE: base64url(SHA-256(verifier)).")
    issued_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)


class SquareObject(models.Model):
    """One Square object (location, payment, refund, order, invoice, customer, vendor, event) as the JSON Square
    returns, with the times lists filter and sort on."""

    merchant = models.ForeignKey(SquareMerchant, on_delete=models.CASCADE, related_name="square_objects")
    object_type = models.CharField(max_length=20)
    square_id = models.CharField(max_length=192)
    body = models.JSONField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    listed_from = models.DateTimeField(help_text="Eventual consistency: lists show it from this time on.")
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="Events: when the webhook was delivered.")

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["merchant", "object_type", "square_id"],
                                               name="one_square_object_per_id")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.square_id}"


class SquareFault(models.Model):
    """A fault switch: after `after` calls whose path starts with `path_prefix`, the next `remaining` get `status`
    (500, 503 or 429); 401 means the OAuth access token the call presents expires at that moment."""

    path_prefix = models.CharField(max_length=200)
    method = models.CharField(max_length=10, blank=True, help_text="Empty: every method.")
    status = models.PositiveSmallIntegerField()
    remaining = models.PositiveIntegerField()
    after = models.PositiveIntegerField(default=0, help_text="Calls on the path let through before the fault.")

    def __str__(self) -> str:
        return f"{self.status} × {self.remaining} on {self.method or '*'} {self.path_prefix}"


class SquareRequest(models.Model):
    """Every request the Square emulator answered: what it was, its Square-Version, and whether it fit api.json."""

    merchant = models.ForeignKey(SquareMerchant, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="requests")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    query = models.TextField(blank=True)
    body = models.TextField(blank=True)
    status = models.PositiveSmallIntegerField()
    square_version = models.CharField(max_length=40, blank=True)
    spec_problems = models.TextField(blank=True, help_text="Empty: the request fits api.json.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    @property
    def fits_spec(self) -> bool:
        return not self.spec_problems

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"
