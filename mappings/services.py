"""The resolver (posting → GL accounts + dimensions by rule) and the validator (against the Visma mirror)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from .documents import Posting, PostingLine
from .models import Customer, DimensionValue, GLAccount, GLMappingRule, SquareLocation, Supplier
from .money import MoneyError, is_exact, minor_units

# Which rule field a posting line's role takes its account from.
ROLE_ACCOUNT_FIELD = {"account": "gl_account", "fee": "fee_account", "clearing": "clearing_account",
                      "exchange_difference": "exchange_difference_account", "disputes": "disputes_account",
                      "tip": "tip_account"}


@dataclass
class MappingOutcome:
    posting: Posting
    rule: GLMappingRule | None
    problems: list[str] = field(default_factory=list)


def _payer_matches(rule_payer: str, payer: str) -> bool:
    # A payer id is matched as given; an email address whatever its case.
    return rule_payer == payer or ("@" in rule_payer and rule_payer.strip().lower() == payer.strip().lower())


def mapping_rule_matches(rule: GLMappingRule, posting: Posting) -> bool:
    facts = posting.facts
    amount = abs(facts.amount)
    return (
        (not rule.customer or rule.customer == (facts.customer or posting.customer))
        and (not rule.payer or _payer_matches(rule.payer, facts.payer))
        and (not rule.transaction_type or rule.transaction_type == facts.transaction_type)
        and (not rule.currency or rule.currency.upper() == facts.currency.upper())
        and (rule.min_amount is None or amount >= rule.min_amount)
        and (rule.max_amount is None or amount <= rule.max_amount)
        and (not rule.customer_group or rule.customer_group == facts.customer_group)
        and (not rule.payment_method or rule.payment_method == facts.payment_method)
        and (not rule.location or rule.location == facts.location)
    )


def mapping_rules_active(*, tenant, system: str) -> list[GLMappingRule]:
    """The tenant's active rules for a system, in the order they are tried (priority, then age)."""
    return list(GLMappingRule.objects.filter(tenant=tenant, system=system, is_active=True).order_by("priority", "id"))


def mapping_rule_resolve(*, tenant, system: str, posting: Posting,
                         rules: list[GLMappingRule] | None = None) -> GLMappingRule | None:
    """The first active rule, by priority, whose conditions all match the posting's facts (`rules`: already read).

    A rule naming the customer or payer is an exception for that one party: it wins over every rule that does not,
    whatever their priorities; next, a rule naming the location (a store) wins over rules for any location."""
    rules = rules if rules is not None else mapping_rules_active(tenant=tenant, system=system)
    matching = [rule for rule in rules if mapping_rule_matches(rule, posting)]
    return next((rule for rule in matching if rule.customer or rule.payer), None) \
        or next((rule for rule in matching if rule.location), None) or next(iter(matching), None)


def posting_map(*, tenant, system: str, posting: Posting, rules: list[GLMappingRule] | None = None
                ) -> MappingOutcome:
    """Fill each line's GL account and dimensions from the matching rule; say plainly what is missing."""
    rule = mapping_rule_resolve(tenant=tenant, system=system, posting=posting, rules=rules)
    facts = posting.facts
    if rule is None:
        return MappingOutcome(
            posting,
            None,
            [
                f"No active {system} mapping rule matches {facts.transaction_type} of {facts.amount} {facts.currency}"
                + (f" for customer group {facts.customer_group!r}" if facts.customer_group else "")
                + (f" paid by {facts.payment_method}" if facts.payment_method else "")
                + (f" at location {location_display(tenant, facts.location)}" if facts.location else "")
                + ": add a GL mapping rule for it, or approve with the accounts to use."
            ],
        )
    problems = []
    posting.rule = rule.name
    rule_dimensions = {str(key): str(value) for key, value in (rule.dimensions or {}).items()}
    for line in posting.lines:
        account_field = ROLE_ACCOUNT_FIELD.get(line.role)
        account = getattr(rule, account_field) if account_field else ""
        if not account:
            label = GLMappingRule._meta.get_field(account_field).verbose_name if account_field else line.role
            problems.append(
                f"Mapping rule {rule.name!r} has no {label} but the posting has a {line.role} line: "
                f"set the {label} on the rule."
            )
            continue
        line.account = account
        # A line's own dimension (e.g. the customer from the payer) wins over the rule's default.
        line.dimensions = {**rule_dimensions, **line.dimensions}
    return MappingOutcome(posting, rule, problems)


def location_display(tenant, location_id: str) -> str:
    """A Square location as a person knows it: its name and id (the id alone when it is not mirrored)."""
    name = SquareLocation.objects.filter(tenant=tenant, location_id=location_id).values_list("name", flat=True).first()
    return f"{name} ({location_id})" if name else location_id


# A live re-check of one reference value: (kind, key) → True when Visma now has it active (and the mirror is
# refreshed). Kinds: account (key: the number), dimension (key: "<segment id>:<value>"), customer, supplier.
LiveCheck = Callable[[str, str], bool]


class ReferenceMirror:
    """The tenant's mirrored Visma reference data as a posting needs it: only the accounts, dimension values and
    customers asked for are read, each once per mirror (a stream keeps one for the records it advances)."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.refresh()

    def refresh(self) -> None:
        self._accounts: dict[str, bool | None] = {}
        self._control: dict[str, str] = {}
        self._dimensions: dict[tuple[str, str], bool | None] = {}
        self._customers: dict[str, tuple[bool, str] | None] = {}
        self._everything = False

    def load(self, *, accounts=(), dimensions=()) -> None:
        """Read the named accounts and (segment id, value) pairs not read yet: one query each."""
        wanted = {str(number) for number in accounts} - set(self._accounts)
        if wanted and not self._everything:
            found = {number: (active, module) for number, active, module in GLAccount.objects.filter(
                tenant=self.tenant, number__in=wanted).values_list("number", "active", "control_account_module")}
            self._accounts.update({number: (found[number][0] if number in found else None) for number in wanted})
            self._control.update({number: found[number][1] for number in wanted if number in found})
        pairs = {(str(segment), str(value)) for segment, value in dimensions} - set(self._dimensions)
        if pairs and not self._everything:
            query = Q()
            for segment, value in pairs:
                query |= Q(segment_id=segment, value=value)
            found = {(str(segment), value): active for segment, value, active in DimensionValue.objects.filter(
                query, tenant=self.tenant).values_list("segment_id", "value", "active")}
            self._dimensions.update({pair: found.get(pair) for pair in pairs})

    def account(self, number: str) -> bool | None:
        """True when active in the mirror, False when inactive, None when unknown."""
        self.load(accounts=[number])
        return self._accounts.get(str(number))

    def control_module(self, number: str) -> str:
        """The ledger whose control account this is (Visma's controlAccountModule: AR, AP...); "" when none."""
        self.load(accounts=[number])
        return self._control.get(str(number), "")

    def dimension(self, segment_id: str, value: str) -> bool | None:
        self.load(dimensions=[(segment_id, value)])
        return self._dimensions.get((str(segment_id), str(value)))

    def customer(self, number: str) -> tuple[bool, str] | None:
        """(active, customer class) of a customer in the mirror, None when unknown."""
        if number not in self._customers:
            row = Customer.objects.filter(tenant=self.tenant, number=number).values_list(
                "active", "customer_class").first()
            self._customers[number] = (bool(row[0]), row[1] or "") if row else None
        return self._customers[number]

    def customer_class(self, number: str) -> str:
        """The customer's class: what a mapping rule's customer group matches ("" when unknown)."""
        found = self.customer(number) if number else None
        return found[1] if found else ""

    @property
    def accounts(self) -> dict[str, bool]:
        """Every account of the tenant (a rule check, a review form): read once."""
        self._load_everything()
        return {number: active for number, active in self._accounts.items() if active is not None}

    @property
    def dimensions(self) -> dict[tuple[str, str], bool]:
        self._load_everything()
        return {pair: active for pair, active in self._dimensions.items() if active is not None}

    def _load_everything(self) -> None:
        if self._everything:
            return
        for number, active, module in GLAccount.objects.filter(tenant=self.tenant).values_list(
                "number", "active", "control_account_module"):
            self._accounts[number] = active
            self._control[number] = module
        self._dimensions.update({
            (str(segment_id), value): active
            for segment_id, value, active in DimensionValue.objects.filter(tenant=self.tenant).values_list(
                "segment_id", "value", "active")
        })
        self._everything = True


def _state(found: bool | None) -> str:
    return "unknown in Visma" if found is None else "inactive in Visma"


def posting_validate(*, tenant, posting: Posting, live_check: LiveCheck | None = None,
                     mirror: ReferenceMirror | None = None) -> list[str]:
    """Everything wrong with a posting before it may be written; empty when it can go to Visma.

    An account or dimension value the mirror does not show as active is re-checked live once (the mirror may be
    stale) through `live_check`, which refreshes the mirror.
    """
    mirror = mirror or ReferenceMirror(tenant)
    problems: list[str] = []
    rule = f" (chosen by mapping rule {posting.rule!r})" if posting.rule else ""
    try:
        minor_units(posting.currency)
    except MoneyError as exc:
        return [f"Posting {posting.marker}: {exc}"]
    for number, line in enumerate(posting.lines, start=1):
        for side in ("debit", "credit"):
            amount = getattr(line, side)
            if not isinstance(amount, Decimal) or not amount.is_finite():
                problems.append(f"Line {number} ({line.role}): {side} {amount!r} is not an amount")
            elif amount < 0:
                problems.append(f"Line {number} ({line.role}): {side} {amount} is negative")
            elif not _exact(amount, posting.currency):
                problems.append(
                    f"Line {number} ({line.role}): {side} {amount} has more decimals than "
                    f"{posting.currency} allows ({minor_units(posting.currency)})"
                )
    if posting.document == "journal" and not posting.is_balanced:
        problems.append(
            f"Journal {posting.marker} does not balance: debit {posting.total_debit} ≠ credit {posting.total_credit}"
        )

    live_answers: dict[tuple[str, str], bool] = {}

    def visma_has(kind: str, key: str) -> bool:
        # Each value is asked of Visma at most once per validation, however many lines carry it.
        if live_check is None:
            return False
        if (kind, key) not in live_answers:
            live_answers[kind, key] = bool(live_check(kind, key))
        return live_answers[kind, key]

    mirror.load(accounts=[line.account for line in posting.lines if line.account],
                dimensions=[(segment, value) for line in posting.lines for segment, value in line.dimensions.items()])

    def active(kind: str, key) -> bool | None:
        found = mirror.account(key) if kind == "account" else mirror.dimension(*key)
        if found is True:
            return True
        if visma_has(kind, key if isinstance(key, str) else f"{key[0]}:{key[1]}"):
            # Visma's live answer is the truth; the mirror was stale.
            mirror.refresh()
            return True
        return found

    for number, line in enumerate(posting.lines, start=1):
        if not line.account:
            problems.append(f"Line {number} ({line.role}) has no GL account{rule}: set one on the rule or approve "
                            "with a corrected account.")
            continue
        found = active("account", line.account)
        if found is not True:
            problems.append(
                f"GL account {line.account} on line {number} ({line.role}) is {_state(found)}{rule}: "
                + ("activate it in Visma or point the rule at an active account."
                   if found is False else "create it in Visma or correct the account on the rule.")
            )
        for segment_id, value in line.dimensions.items():
            found = active("dimension", (str(segment_id), value))
            if found is not True:
                problems.append(
                    f"Dimension value {value} of segment {segment_id} on line {number} is {_state(found)}{rule}: "
                    "fix the rule's dimensions or the value in Visma."
                )
    for number, line in _journal_lines(posting):
        module = mirror.control_module(line.account)
        if module:
            problems.append(
                f"Line {number} ({line.role}): GL account {line.account} is a control account of the {module} ledger "
                f"in Visma{rule}: a journal must not post to it (only {module} documents do); a payment of an "
                "invoice is a customer payment, and the rule must point this line at another account."
            )
    customer = mirror.customer(posting.customer) if posting.customer else None
    if posting.customer and not (customer and customer[0]):
        if not visma_has("customer", posting.customer):
            problems.append(f"Customer {posting.customer} is unknown or inactive in Visma: map the payer to a customer.")
    if posting.supplier and not Supplier.objects.filter(tenant=tenant, number=posting.supplier, active=True).exists():
        if not visma_has("supplier", posting.supplier):
            problems.append(f"Supplier {posting.supplier} is unknown or inactive in Visma.")
    return _unique(problems)


# The line roles of a posting that become journal lines in Visma: all of a journal's; a payment's fee journal.
JOURNAL_ROLES = {"customer_payment": ("fee", "clearing")}


def _journal_lines(posting: Posting) -> list[tuple[int, PostingLine]]:
    numbered = [(number, line) for number, line in enumerate(posting.lines, start=1) if line.account]
    if posting.document == "journal":
        return numbered
    if posting.document in JOURNAL_ROLES and any(line.role == "fee" and (line.debit or line.credit)
                                                 for line in posting.lines):
        return [(number, line) for number, line in numbered if line.role in JOURNAL_ROLES[posting.document]]
    return []


def _exact(amount: Decimal, currency: str) -> bool:
    try:
        return is_exact(amount, currency)
    except MoneyError:  # more digits than any ledger holds
        return False


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def mapping_rule_validate(rule: GLMappingRule, *, mirror: ReferenceMirror | None = None) -> GLMappingRule:
    """Check a rule's accounts and dimension values against the mirror and store the verdict on the rule."""
    mirror = mirror or ReferenceMirror(rule.tenant)
    problems = []
    for field_name in ("gl_account", "fee_account", "clearing_account", "exchange_difference_account",
                       "disputes_account", "tip_account"):
        number = getattr(rule, field_name)
        if not number:
            continue
        label = GLMappingRule._meta.get_field(field_name).verbose_name
        found = mirror.accounts.get(number)
        if found is not True:
            problems.append(f"{label} {number} is {_state(found)}")
        elif mirror.control_module(number) and _journal_field(rule, field_name):
            problems.append(f"{label} {number} is a control account of the {mirror.control_module(number)} ledger in "
                            "Visma: a journal line cannot post to it")
    for segment_id, value in (rule.dimensions or {}).items():
        found = mirror.dimensions.get((str(segment_id), str(value)))
        if found is not True:
            problems.append(f"dimension segment {segment_id} value {value} is {_state(found)}")
    rule.validation_problems = problems
    rule.validation_state = (
        GLMappingRule.ValidationState.INVALID if problems else GLMappingRule.ValidationState.VALID
    )
    rule.validated_at = timezone.now()
    GLMappingRule.objects.filter(pk=rule.pk).update(
        validation_problems=rule.validation_problems,
        validation_state=rule.validation_state,
        validated_at=rule.validated_at,
    )
    return rule


def _journal_field(rule: GLMappingRule, field_name: str) -> bool:
    """Whether the rule's account field ends up on a journal line: the fee and clearing accounts always (a payment's
    fee journal); the GL account unless the rule is for payments of invoices (a customer payment, whose
    receivable side is the invoice's own)."""
    return field_name != "gl_account" or rule.transaction_type != "invoice_payment"


def mapping_rules_revalidate(tenant) -> int:
    """After a reference-data refresh: re-check every rule of the tenant; returns how many are invalid."""
    mirror = ReferenceMirror(tenant)
    invalid = 0
    for rule in GLMappingRule.objects.filter(tenant=tenant):
        if mapping_rule_validate(rule, mirror=mirror).validation_state == GLMappingRule.ValidationState.INVALID:
            invalid += 1
    return invalid
