"""The posting a source object becomes: lines by role, resolved to GL accounts and dimensions by the rules."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal

ZERO = Decimal("0")
# The marker fits Visma's shortest reference field whole (GLTran.RefNbr, Batch.BatchNbr: 15 characters), in
# characters neither case folding nor trimming changes: "ML" and 13 base32 letters (65 bits of SHA-256).
MARKER_PREFIX = "ML"
MARKER_LENGTH = 15
MARKER_PATTERN = re.compile(r"^ML[A-Z2-7]{13}$")
# The document of a posting that writes nothing: the source object is settled, saying why (a payment canceled before
# it was booked, a payment another stream books), and its record is posted with no document of its own.
NOTHING_BOOKED = "nothing_booked"
# ISO 4217's code for "no currency": the currency of a posting that books nothing and whose source names none.
NO_CURRENCY = "XXX"


class MarkerError(ValueError):
    """A marker not of our one shape: it could be cut or folded by Visma and never found again."""


def _digest_marker(values: list) -> str:
    # A JSON list is unambiguous: ("a:b", "c") and ("a", "b:c") never encode alike.
    encoded = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    letters = base64.b32encode(hashlib.sha256(encoded).digest()).decode("ascii")
    return MARKER_PREFIX + letters[: MARKER_LENGTH - len(MARKER_PREFIX)]


def posting_marker(*, tenant_id: int, system: str, stream: str, source_id: str) -> str:
    """The marker a source object's document carries in Visma: the same for the same object, every time."""
    return _digest_marker(["posting", int(tenant_id), str(system), str(stream), str(source_id)])


def posting_marker_part(marker: str, part: str) -> str:
    """The marker of a second document written for the same posting (a customer payment's fee journal: "fee")."""
    marker_check(marker)
    return _digest_marker(["part", marker, str(part)])


def marker_check(marker: str) -> str:
    if not isinstance(marker, str) or not MARKER_PATTERN.fullmatch(marker):
        raise MarkerError(
            f"marker {marker!r} is not of the shape ML + 13 base32 letters (15 characters): "
            "make it with Stream.marker(source_id)"
        )
    return marker


@dataclass(frozen=True)
class MatchFacts:
    """What a mapping rule matches on."""

    transaction_type: str
    amount: Decimal
    currency: str
    customer_group: str = ""
    payment_method: str = ""
    # Who paid: the Visma customer and the partner's payer id or email (a per-customer rule matches on them).
    customer: str = ""
    payer: str = ""
    # Where it happened: a Square location id (a store); a rule for the location wins over rules for any.
    location: str = ""


@dataclass
class PostingLine:
    """One journal line. `role` names the rule's account it posts to: account, fee, clearing, tip..."""

    role: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    description: str = ""
    account: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)


@dataclass
class Posting:
    """A document to write into Visma: a journal transaction, a customer payment, a customer invoice..."""

    document: str
    marker: str
    currency: str
    date: date
    description: str
    facts: MatchFacts
    lines: list[PostingLine] = field(default_factory=list)
    customer: str = ""
    supplier: str = ""
    rule: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        marker_check(self.marker)

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def is_balanced(self) -> bool:
        return self.total_debit == self.total_credit

    def to_json(self) -> dict:
        """JSON for the record's `proposed_posting`: Decimals as strings, never floats."""

        def encode(value):
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, dict):
                return {key: encode(item) for key, item in value.items()}
            if isinstance(value, list):
                return [encode(item) for item in value]
            return value

        return encode(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> Posting:
        facts = data["facts"]
        return cls(
            document=data["document"],
            marker=data["marker"],
            currency=data["currency"],
            date=date.fromisoformat(data["date"]),
            description=data.get("description", ""),
            facts=MatchFacts(
                transaction_type=facts["transaction_type"],
                amount=Decimal(facts["amount"]),
                currency=facts["currency"],
                customer_group=facts.get("customer_group", ""),
                payment_method=facts.get("payment_method", ""),
                customer=facts.get("customer", ""),
                payer=facts.get("payer", ""),
                location=facts.get("location", ""),
            ),
            lines=[
                PostingLine(
                    role=line["role"],
                    debit=Decimal(line.get("debit") or "0"),
                    credit=Decimal(line.get("credit") or "0"),
                    description=line.get("description", ""),
                    account=line.get("account", ""),
                    dimensions=dict(line.get("dimensions") or {}),
                )
                for line in data.get("lines", [])
            ],
            customer=data.get("customer", ""),
            supplier=data.get("supplier", ""),
            rule=data.get("rule", ""),
            extra=dict(data.get("extra") or {}),
        )


def posting_apply_correction(posting: Posting, correction: dict | None) -> Posting:
    """A finance user's correction: accounts by role, dimensions, customer; lines and amounts never change."""
    if not correction:
        return posting
    accounts = correction.get("accounts") or {}
    dimensions = {str(key): str(value) for key, value in (correction.get("dimensions") or {}).items()}
    for line in posting.lines:
        if accounts.get(line.role):
            line.account = accounts[line.role]
        line.dimensions.update(dimensions)
    if correction.get("customer"):
        posting.customer = correction["customer"]
    if correction.get("supplier"):
        posting.supplier = correction["supplier"]
    if correction.get("date"):
        # Finance moves a posting out of a closed period (into the first open one, or a day they chose).
        posting.date = date.fromisoformat(str(correction["date"]))
    return posting
