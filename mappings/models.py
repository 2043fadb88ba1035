"""GL mapping rules (with history), the mirror of Visma reference data, and external-id cross references."""
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from connectors.models import PARTNER_SYSTEMS


class ReferenceData(models.Model):
    """Fields every mirrored Visma reference row has."""

    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.CASCADE, related_name="+")
    active = models.BooleanField(default=True)
    visma_last_modified = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class GLAccount(ReferenceData):
    """A general-ledger account as Visma has it (mirror; read-only in the admin)."""

    number = models.CharField("account", max_length=32, help_text="Visma accountCD")
    description = models.CharField(max_length=255, blank=True)
    account_type = models.CharField(max_length=32, blank=True, help_text="Asset, Liability, Income, Expense")
    currency = models.CharField(max_length=3, blank=True)
    # AccountDto.controlAccountModule (swagger): the ledger (AR, AP...) that alone may post to the account.
    control_account_module = models.CharField(
        max_length=32, blank=True, help_text="Visma controlAccountModule: a control account of this ledger (AR, AP) "
                                             "takes no journal lines; empty: not a control account",
    )

    class Meta:
        ordering = ["tenant", "number"]
        verbose_name = "GL account"
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="one_gl_account_per_number")]

    def __str__(self) -> str:
        return f"{self.number} {self.description}".strip()


class DimensionValue(ReferenceData):
    """A value of a Visma dimension segment (e.g. SUBACCOUNT segment 1 = department 100)."""

    dimension = models.CharField(max_length=32, default="SUBACCOUNT")
    segment_id = models.PositiveSmallIntegerField()
    segment_name = models.CharField(max_length=100, blank=True, help_text="What the segment means: department...")
    value = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["tenant", "dimension", "segment_id", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dimension", "segment_id", "value"], name="one_dimension_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.segment_name or self.segment_id}={self.value} {self.description}".strip()


class FinancialPeriod(ReferenceData):
    """A financial period as Visma has it (FinancialPeriodDto, GET /v1/financialPeriod): `active` means open for
    posting; a module may have closed it."""

    period_id = models.CharField(max_length=6, help_text="Visma period: year and period number, YYYYPP")
    year = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    end_date = models.DateField(help_text="The last day of the period")
    description = models.CharField(max_length=100, blank=True)
    closed_in_general_ledger = models.BooleanField(default=False)
    closed_in_customer_ledger = models.BooleanField(default=False)
    closed_in_supplier_ledger = models.BooleanField(default=False)
    closed_in_cash_management = models.BooleanField(default=False)

    class Meta:
        ordering = ["tenant", "start_date", "period_id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "period_id"], name="one_financial_period_per_id")]
        indexes = [models.Index(fields=["tenant", "start_date"], name="financial_period_start")]

    def __str__(self) -> str:
        return f"{self.period_id} {self.description}".strip()


class Customer(ReferenceData):
    number = models.CharField(max_length=64, help_text="Visma customerCd")
    name = models.CharField(max_length=255)
    customer_class = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)

    class Meta:
        ordering = ["tenant", "number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="one_customer_per_number")]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class CustomerInvoice(ReferenceData):
    """A customer invoice a payment may settle, as Visma has it (mirror): found by the external reference a webshop
    or PayPal put on it. `active`: a payment can still be applied (released, not yet paid)."""

    number = models.CharField(max_length=32, help_text="Visma referenceNumber")
    external_reference = models.CharField(max_length=64, blank=True)
    customer = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    status = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["tenant", "number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="one_customer_invoice_per_number")]
        indexes = [models.Index(fields=["tenant", "external_reference"], name="customer_invoice_reference")]

    def __str__(self) -> str:
        return f"{self.number} {self.external_reference}".strip()


class Currency(ReferenceData):
    """A currency of the Visma company (mirror of GET /v1/currency): `is_base` marks the company's base currency,
    which tells which of a customer invoice's amount twins is in its document currency."""

    code = models.CharField(max_length=3)
    description = models.CharField(max_length=100, blank=True)
    is_base = models.BooleanField(default=False)
    decimals = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "code"]
        verbose_name_plural = "currencies"
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="one_currency_per_code")]

    def __str__(self) -> str:
        return f"{self.code}{' (base)' if self.is_base else ''}"


class Supplier(ReferenceData):
    number = models.CharField(max_length=64, help_text="Visma supplierCd")
    name = models.CharField(max_length=255)
    supplier_class = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, blank=True)

    class Meta:
        ordering = ["tenant", "number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="one_supplier_per_number")]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class ExternalReference(models.Model):
    """An id in a partner system and the Visma id it stands for (a PayPal payer → a Visma customer)."""

    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.CASCADE, related_name="+")
    system = models.CharField(max_length=32, choices=PARTNER_SYSTEMS)
    external_kind = models.CharField(max_length=64, help_text="payer, customer, vendor, invoice...")
    external_id = models.CharField(max_length=255)
    visma_kind = models.CharField(max_length=64, help_text="customer, supplier, customer_invoice...")
    visma_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "system", "external_kind", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "system", "external_kind", "external_id"], name="one_cross_reference"
            )
        ]

    def __str__(self) -> str:
        return f"{self.system}:{self.external_kind}:{self.external_id} → {self.visma_kind} {self.visma_id}"


class VatCodeMapping(models.Model):
    """Which Visma VAT code a partner's tax stands for (a PayPal invoice line's tax name and percent → Visma's VAT
    code), so a document we create in Visma carries VAT as the partner billed it. Kept by finance in the admin."""

    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.CASCADE, related_name="+")
    system = models.CharField(max_length=32, choices=PARTNER_SYSTEMS)
    tax_name = models.CharField(max_length=100, blank=True,
                                help_text="The tax's name as the partner gives it (e.g. PayPal's item tax name); "
                                          "blank: any name at this percent")
    percent = models.DecimalField(max_digits=6, decimal_places=3, help_text="The tax rate in percent, e.g. 25")
    vat_code = models.CharField("Visma VAT code", max_length=15, help_text="Visma's VAT id (GET /v1/vat)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["tenant", "system", "percent", "tax_name"]
        verbose_name = "VAT code mapping"
        constraints = [models.UniqueConstraint(fields=["tenant", "system", "tax_name", "percent"],
                                               name="one_vat_code_per_partner_tax")]

    def __str__(self) -> str:
        return f"{self.system}: {self.tax_name or 'any tax'} {self.percent} % → VAT code {self.vat_code}"


class GLMappingRule(models.Model):
    """Which GL accounts and dimensions a kind of transaction posts to; the first matching rule by priority wins."""

    class ValidationState(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"
        UNCHECKED = "unchecked", "Not yet checked"

    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.CASCADE, related_name="mapping_rules")
    system = models.CharField(max_length=32, choices=PARTNER_SYSTEMS, help_text="Where the transaction comes from")
    name = models.CharField(max_length=120, help_text="What the rule is for, in your words")
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are tried first")
    is_active = models.BooleanField(default=True)

    # What the rule matches; an empty condition matches anything.
    transaction_type = models.CharField(
        max_length=64, blank=True, help_text="capture, refund, reversal, invoice_payment, charge, dispute..."
    )
    currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217, e.g. EUR; empty: any")
    min_amount = models.DecimalField(
        max_digits=19, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    max_amount = models.DecimalField(
        max_digits=19, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    customer_group = models.CharField(max_length=64, blank=True, help_text="Customer class or group; empty: any")
    payment_method = models.CharField(
        max_length=64, blank=True, help_text="card, sepa_debit, Square's CARD, CASH, WALLET...; empty: any")
    # A per-customer exception: a rule naming the customer or payer wins over every group rule.
    customer = models.CharField(
        max_length=64, blank=True, help_text="One Visma customer number; a rule for it wins over group rules"
    )
    payer = models.CharField(
        max_length=255, blank=True, help_text="One partner payer (PayPal payer id or email); wins over group rules"
    )
    # A store's exception: a rule naming the Square location wins over every rule for any location.
    location = models.CharField(
        max_length=32, blank=True,
        help_text="One Square location id (a store); a rule for it wins over rules for any location; empty: any")

    # Where it posts.
    gl_account = models.CharField("GL account", max_length=32, help_text="Revenue / receivable account")
    fee_account = models.CharField(max_length=32, blank=True, help_text="Where the processor's fee goes")
    clearing_account = models.CharField(max_length=32, blank=True, help_text="Processor clearing account (net)")
    exchange_difference_account = models.CharField(
        max_length=32, blank=True,
        help_text="Where the difference between the processor's exchange rate and Visma's goes (converted payments)")
    disputes_account = models.CharField(
        max_length=32, blank=True,
        help_text="Where money a processor holds back for a dispute or chargeback sits until it is won or lost")
    tip_account = models.CharField(
        max_length=32, blank=True, help_text="Where tips the customer added go (owed to staff)")
    dimensions = models.JSONField(
        default=dict,
        blank=True,
        help_text='Subaccount segment values by segment id, e.g. {"1": "100", "2": "P-42"}',
    )

    validation_state = models.CharField(
        max_length=16, choices=ValidationState.choices, default=ValidationState.UNCHECKED, editable=False
    )
    validation_problems = models.JSONField(default=list, blank=True, editable=False)
    validated_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["validation_state", "validation_problems", "validated_at"])

    class Meta:
        ordering = ["tenant", "system", "priority", "id"]
        verbose_name = "GL mapping rule"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_amount__isnull=True)
                | models.Q(max_amount__isnull=True)
                | models.Q(min_amount__lte=models.F("max_amount")),
                name="mapping_rule_amount_range_ordered",
            ),
            models.UniqueConstraint(fields=["tenant", "system", "name"], name="mapping_rule_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.priority})"


class SquareLocation(models.Model):
    """A Square location (a store, the web shop) as Square lists it (mirror of GET /v2/locations; read-only in the
    admin). Inactive locations stay: their payments can still be refunded or adjusted (docs/square.md §5)."""

    class Status(models.TextChoices):
        # Square's LocationStatus (api.json): ACTIVE, INACTIVE.
        ACTIVE = "ACTIVE", "Active"
        INACTIVE = "INACTIVE", "Inactive"

    tenant = models.ForeignKey("connectors.Tenant", on_delete=models.CASCADE, related_name="+")
    location_id = models.CharField("Square location id", max_length=32, help_text="Location.id (≤ 32 characters)")
    name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    currency = models.CharField(max_length=3, blank=True, help_text="Used for all transactions at this location")
    timezone = models.CharField(max_length=64, blank=True)
    is_main = models.BooleanField("main location", default=False)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name", "location_id"]
        verbose_name = "Square location"
        constraints = [models.UniqueConstraint(fields=["tenant", "location_id"], name="one_square_location_per_id")]

    def __str__(self) -> str:
        return f"{self.name or self.location_id}{'' if self.active else ' (inactive)'}"

    @property
    def active(self) -> bool:
        return self.status == self.Status.ACTIVE
