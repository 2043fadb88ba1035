"""Provisioning: a tenant, its connections, integrations and mapping rules from a JSON file; connection checks."""
from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import slug_re
from django.db import transaction

from audit.services import configuration_audit
from mappings.models import GLAccount, GLMappingRule, VatCodeMapping
from mappings.money import currency_is_iso
from mappings.services import mapping_rule_validate

from . import registry
from .logging import redact
from .models import (
    PARTNER_SYSTEMS,
    Connection,
    Integration,
    Tenant,
    time_zone_validate,
    visma_own_numbers_validate,
)
from .paypal.webhooks import PAYPAL_CERT_HOSTS
from .services import (
    connection_credentials,
    connection_save,
    integration_poll_minutes_clean,
    integration_save,
    integration_settings_clean,
)

PARTNER_KINDS = [kind for kind, _label in PARTNER_SYSTEMS]

# Credential keys that identify rather than authenticate: shown in messages, everything else is masked.
IDENTIFIER_CREDENTIALS = frozenset({"client_id", "tenant_id", "company_id", "webhook_id"})
CONNECTION_KEYS = ("base_url", "token_url", "hourly_call_budget")
INTEGRATION_KEYS = ("settings", "poll_minutes", "enabled")

RULE_TEXT_FIELDS = (
    "system", "name", "transaction_type", "currency", "customer_group", "customer", "payer", "payment_method",
    "gl_account", "fee_account", "clearing_account", "exchange_difference_account", "disputes_account",
    "location", "tip_account",
)
RULE_FIELDS = (*RULE_TEXT_FIELDS, "priority", "is_active", "min_amount", "max_amount", "dimensions")
RULE_REQUIRED = ("name", "gl_account")

DEMO_TENANT_FILE = Path(settings.BASE_DIR) / "examples" / "tenant.json"

# Bounds on what a tenant file may hold: far above any real tenant, far below what would hurt (a 10 MB "secret",
# a budget of 2**70 that no database column holds, a million rules).
FILE_MAX_BYTES = 16 * 1024 * 1024
TEXT_MAX_CHARS = 4096
KEY_MAX_CHARS = 100
NESTING_MAX = 16
LIST_MAX_ITEMS = 10_000
CREDENTIAL_LIST_MAX = 10
BUDGET_MAX = 1_000_000
PRIORITY_MAX = 1_000_000
DIMENSIONS_MAX = 20
DEMO_USERS = {"accountant": "Accountant", "finance": "Finance", "operator": "Operator"}


class TenantFileError(Exception):
    """A tenant file that cannot be loaded; each problem names its key path. Nothing was changed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class TenantLoadResult:
    tenant: Tenant
    tenant_created: bool
    integrations: dict[str, Integration]
    rules_created: int = 0
    rules_updated: int = 0
    rules_unchanged: int = 0
    # Rules saved but not (yet) valid against the Visma reference mirror, with the reasons.
    rules_not_valid: dict[str, list[str]] = field(default_factory=dict)
    reference_data_mirrored: bool = False

    def as_json(self) -> dict:
        return {
            "tenant": self.tenant.slug,
            "integrations": {
                kind: {"id": str(integration.pk), "webhook_url": integration.webhook_path}
                for kind, integration in self.integrations.items()
            },
        }


# --- reading and checking the file -----------------------------------------------------------------------


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def tenant_file_read(path: str | Path) -> dict:
    """The tenant document in a file; numbers with decimals are read as Decimal, never float."""
    try:
        with open(path, "rb") as file:
            raw = file.read(FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise TenantFileError([f"{path}: cannot be read ({exc.strerror or exc})"]) from exc
    if len(raw) > FILE_MAX_BYTES:
        raise TenantFileError([f"{path}: larger than {FILE_MAX_BYTES // (1024 * 1024)} MB; a tenant file is a few KB"])
    try:
        # An editor's byte order mark is tolerated in a file (RFC 8259 §8.1 lets a parser ignore it).
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TenantFileError([f"{path}: not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8"]) from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise TenantFileError([f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]) from exc
    except RecursionError:
        raise TenantFileError([f"{path}: nested deeper than JSON can be read"]) from None
    except ValueError as exc:  # a constant (NaN, Infinity) or an integer of thousands of digits
        raise TenantFileError([f"{path}: not valid JSON ({exc})"]) from None


@dataclass
class _ConnectionPlan:
    system: str
    base_url: str
    token_url: str
    credentials: dict[str, Any]
    hourly_call_budget: int | None


@dataclass
class _IntegrationPlan:
    kind: str
    connection: _ConnectionPlan
    settings: dict
    poll_minutes: dict
    enabled: bool | None


@dataclass
class _Plan:
    slug: str
    name: str
    visma: _ConnectionPlan
    integrations: list[_IntegrationPlan]
    rules: list[tuple[str, dict]]  # (key path, field values)
    visma_own_numbers: list[str] | None = None  # None: as the tenant has it (a new one: the default)
    time_zone: str | None = None  # likewise
    visma_release: bool | None = None  # likewise
    vat_codes: list[dict] = field(default_factory=list)  # VatCodeMapping field values


class _Problems:
    def __init__(self):
        self.items: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.items.append(f"{path}: {problem}")


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _whole_number(value: Any, low: int, high: int) -> bool:
    """A JSON whole number (not true/false, not 1.0) within [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _shape_problems(document: Any, problems: _Problems) -> None:
    """What no key may hold, wherever it is: text too long or with control characters (NUL, which PostgreSQL cannot
    store, among them) or lone surrogates, keys that are not short text, nesting or lists beyond reason."""
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        where = path or "(document)"
        if depth > NESTING_MAX:
            problems.add(where, f"nested deeper than {NESTING_MAX} levels")
        elif isinstance(value, str):
            if len(value) > TEXT_MAX_CHARS:
                # Never echoed: it may be a secret.
                problems.add(where, f"must be at most {TEXT_MAX_CHARS} characters (it has {len(value)})")
            elif not value.isprintable():
                problems.add(where, "must not hold control characters (line breaks, tabs, NUL) or lone surrogates")
        elif isinstance(value, dict):
            if len(value) > LIST_MAX_ITEMS:
                problems.add(where, f"has more than {LIST_MAX_ITEMS} keys")
                continue
            for key, item in value.items():
                if not isinstance(key, str) or len(key) > KEY_MAX_CHARS or not key.isprintable():
                    problems.add(where, f"key {ascii(str(key)[:40])} is not a short printable name")
                    continue
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            if len(value) > LIST_MAX_ITEMS:
                problems.add(where, f"has more than {LIST_MAX_ITEMS} items")
                continue
            stack.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))


def _known_credentials(kind: str) -> tuple[str, ...]:
    spec = registry.kind_spec(kind)
    return tuple(dict.fromkeys((*spec.required_credentials, *spec.optional_credentials)))


def _is_credential_value(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return (isinstance(value, list) and len(value) <= CREDENTIAL_LIST_MAX
            and all(isinstance(item, str) and item for item in value))


def _connection_plan(system: str, path: str, raw: Any, problems: _Problems, *, extra_keys=()) -> _ConnectionPlan:
    if not isinstance(raw, dict):
        problems.add(path, "must be an object")
        return _ConnectionPlan(system, "", "", {}, None)
    if "base_url" not in raw:
        problems.add(f"{path}.base_url", "required")
    elif not _is_url(raw["base_url"]) or len(raw["base_url"]) > 500:
        problems.add(f"{path}.base_url", "must be an http(s) URL of at most 500 characters")
    token_url = raw.get("token_url") or ""
    if token_url and (not _is_url(token_url) or len(token_url) > 500):
        problems.add(f"{path}.token_url", "must be an http(s) URL of at most 500 characters")
    budget = raw.get("hourly_call_budget")
    if budget is not None and not _whole_number(budget, 1, BUDGET_MAX):
        problems.add(f"{path}.hourly_call_budget", f"must be a whole number from 1 to {BUDGET_MAX}, or null for no budget")
    known = _known_credentials(system)
    credentials = {}
    for key, value in raw.items():
        if key in CONNECTION_KEYS or key in extra_keys:
            continue
        if key not in known:
            allowed = (*CONNECTION_KEYS, *extra_keys, *known)
            problems.add(f"{path}.{key}", f"unknown key; known: {', '.join(allowed)}")
        elif not _is_credential_value(value):
            # The value is never echoed: it may be a secret.
            problems.add(f"{path}.{key}", f"must be a string (or a list of at most {CREDENTIAL_LIST_MAX} strings)")
        else:
            credentials[key] = value
    for key in registry.kind_spec(system).required_credentials:
        if key in raw and not raw[key]:
            problems.add(f"{path}.{key}", "required (it is empty)")
        elif key not in raw:
            problems.add(f"{path}.{key}", "required")
    return _ConnectionPlan(system, raw.get("base_url", ""), token_url, credentials, budget)


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [message for messages in error.message_dict.values() for message in messages]
    return list(error.messages)


def _integration_plan(kind: str, raw: Any, problems: _Problems) -> _IntegrationPlan:
    path = f"integrations.{kind}"
    connection = _connection_plan(kind, path, raw, problems, extra_keys=INTEGRATION_KEYS)
    raw = raw if isinstance(raw, dict) else {}
    settings_raw = raw.get("settings", {})
    schema = registry.kind_spec(kind).settings_schema
    if not isinstance(settings_raw, dict):
        problems.add(f"{path}.settings", "must be an object")
        settings_raw = {}
    for key, value in settings_raw.items():
        if key not in schema:
            problems.add(f"{path}.settings.{key}", f"unknown setting; {kind} settings are: "
                                                   f"{', '.join(sorted(schema)) or 'none'}")
            continue
        try:
            integration_settings_clean(kind, {key: value})
        except ValidationError as error:
            for message in _messages(error):
                problems.add(f"{path}.settings.{key}", message.removeprefix(f"{key} "))
    poll_raw = raw.get("poll_minutes", {})
    if not isinstance(poll_raw, dict):
        problems.add(f"{path}.poll_minutes", "must be an object of stream → minutes")
        poll_raw = {}
    for stream, minutes in poll_raw.items():
        try:
            integration_poll_minutes_clean(kind, {stream: minutes})
        except ValidationError as error:
            for message in _messages(error):
                problems.add(f"{path}.poll_minutes.{stream}", message.removeprefix(f"{stream}: "))
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems.add(f"{path}.enabled", "must be true or false")
    return _IntegrationPlan(kind, connection, dict(settings_raw), dict(poll_raw), enabled)


def _rule_plan(index: int, raw: Any, default_system: str | None, kinds: list[str],
               problems: _Problems) -> tuple[str, dict] | None:
    path = f"mapping_rules[{index}]"
    if not isinstance(raw, dict):
        problems.add(path, "must be an object")
        return None
    before = len(problems.items)
    for key in raw:
        if key not in RULE_FIELDS:
            problems.add(f"{path}.{key}", f"unknown key; a mapping rule has: {', '.join(RULE_FIELDS)}")
    values = {key: value for key, value in raw.items() if key in RULE_FIELDS}
    if "system" not in values:
        if default_system:
            values["system"] = default_system
        else:
            problems.add(f"{path}.system", "required (the file does not have exactly one integration: "
                                           f"{', '.join(kinds) or 'none'})")
    for key in RULE_REQUIRED:
        if not values.get(key):
            problems.add(f"{path}.{key}", "required")
    for key in RULE_TEXT_FIELDS:
        if key in values and not isinstance(values[key], str):
            problems.add(f"{path}.{key}", "must be a string")
    if "priority" in values and not _whole_number(values["priority"], 0, PRIORITY_MAX):
        problems.add(f"{path}.priority", f"must be a whole number from 0 to {PRIORITY_MAX}")
    if "is_active" in values and not isinstance(values["is_active"], bool):
        problems.add(f"{path}.is_active", "must be true or false")
    for key in ("min_amount", "max_amount"):
        amount = values.get(key)
        if isinstance(amount, float):
            problems.add(f"{path}.{key}", "must be a string or a number, never a float")
        elif amount is not None and (isinstance(amount, bool) or not isinstance(amount, (str, int, Decimal))
                                     or isinstance(amount, str) and not amount.strip()):
            problems.add(f"{path}.{key}", "must be an amount: a number or a string such as \"100.00\"")
    currency = values.get("currency")
    if isinstance(currency, str) and currency and not currency_is_iso(currency):
        problems.add(f"{path}.currency", f"{ascii(currency[:10])} is not an ISO 4217 currency code (e.g. NOK, EUR)")
    dimensions = values.get("dimensions", {})
    if not isinstance(dimensions, dict) or len(dimensions) > DIMENSIONS_MAX or not all(
        isinstance(value, str) or _whole_number(value, 0, 10**12) for value in dimensions.values()
    ):
        problems.add(f"{path}.dimensions", f'must be an object of at most {DIMENSIONS_MAX} segment id → value, '
                                           f'e.g. {{"1": "100"}}')
    else:
        values["dimensions"] = {str(segment): str(value) for segment, value in dimensions.items()}
    if len(problems.items) > before:
        return None
    rule = GLMappingRule(**values)
    try:
        # The tenant does not exist yet; uniqueness is by (tenant, system, name) and handled by the upsert.
        rule.full_clean(exclude=["tenant"], validate_unique=False)
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            for message in messages:
                problems.add(f"{path}.{name}" if name != "__all__" else path, message)
        return None
    return path, values


def tenant_document_check(document: Any) -> _Plan:
    """Everything wrong with a tenant document, each problem with its key path; raises TenantFileError."""
    problems = _Problems()
    if not isinstance(document, dict):
        raise TenantFileError(["(document): must be a JSON object"])
    _shape_problems(document, problems)
    if problems.items:
        raise TenantFileError(problems.items)
    for key in document:
        if key not in ("slug", "name", "visma", "visma_own_numbers", "time_zone", "visma_release", "integrations",
                       "mapping_rules", "vat_codes"):
            problems.add(key, "unknown key; a tenant file has: slug, name, visma, visma_own_numbers, time_zone, "
                              "visma_release, integrations, mapping_rules, vat_codes")
    slug, name = document.get("slug"), document.get("name")
    if not slug:
        problems.add("slug", "required")
    elif not isinstance(slug, str) or len(slug) > 64 or not slug_re.fullmatch(slug):
        problems.add("slug", "must be at most 64 letters, digits, hyphens or underscores")
    if not name:
        problems.add("name", "required")
    elif not isinstance(name, str) or len(name) > 200:
        problems.add("name", "must be a string of at most 200 characters")
    own_numbers = document.get("visma_own_numbers")
    if own_numbers is not None:
        try:
            visma_own_numbers_validate(own_numbers)
        except ValidationError as error:
            for message in error.messages:
                problems.add("visma_own_numbers", message)
    time_zone = document.get("time_zone")
    if time_zone is not None:
        try:
            time_zone_validate(time_zone if isinstance(time_zone, str) else "")
        except ValidationError as error:
            problems.add("time_zone", error.messages[0])
    visma_release = document.get("visma_release")
    if visma_release is not None and not isinstance(visma_release, bool):
        problems.add("visma_release", "must be true (release documents after creating them) or false (leave them on "
                                      "hold)")
    if "visma" not in document:
        problems.add("visma", "required")
        visma = _ConnectionPlan("visma", "", "", {}, None)
    else:
        visma = _connection_plan("visma", "visma", document["visma"], problems)
    integrations_raw = document.get("integrations", {})
    integrations = []
    if not isinstance(integrations_raw, dict):
        problems.add("integrations", "must be an object of kind → integration")
        integrations_raw = {}
    for kind, raw in integrations_raw.items():
        if kind not in PARTNER_KINDS:
            problems.add(f"integrations.{kind}", f"unknown integration kind; known: {', '.join(PARTNER_KINDS)}")
            continue
        integrations.append(_integration_plan(kind, raw, problems))
    kinds = list(integrations_raw)
    default_system = kinds[0] if len(kinds) == 1 else None
    rules_raw = document.get("mapping_rules", [])
    rules = []
    if not isinstance(rules_raw, list):
        problems.add("mapping_rules", "must be a list")
        rules_raw = []
    seen: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(rules_raw):
        planned = _rule_plan(index, raw, default_system, kinds, problems)
        if planned is None:
            continue
        path, values = planned
        key = (values["system"], values["name"])
        if key in seen:
            problems.add(f"{path}.name", f"{values['system']} rule {values['name']!r} is already {seen[key]}")
            continue
        seen[key] = path
        rules.append(planned)
    vat_codes = _vat_codes_plan(document.get("vat_codes", []), problems)
    if problems.items:
        raise TenantFileError(problems.items)
    return _Plan(slug=slug, name=name, visma=visma, integrations=integrations, rules=rules,
                 visma_own_numbers=own_numbers, time_zone=time_zone, visma_release=visma_release,
                 vat_codes=vat_codes)


VAT_CODE_FIELDS = ("system", "tax_name", "percent", "vat_code")


def _vat_codes_plan(raw: Any, problems: _Problems) -> list[dict]:
    """The file's `vat_codes`: which Visma VAT code a partner's tax (system, optional tax name, percent) stands for."""
    if not isinstance(raw, list):
        problems.add("vat_codes", "must be a list")
        return []
    planned, seen = [], set()
    for index, item in enumerate(raw):
        path = f"vat_codes[{index}]"
        if not isinstance(item, dict):
            problems.add(path, "must be an object")
            continue
        before = len(problems.items)
        for key in item:
            if key not in VAT_CODE_FIELDS:
                problems.add(f"{path}.{key}", f"unknown key; a VAT code mapping has: {', '.join(VAT_CODE_FIELDS)}")
        percent = item.get("percent")
        if isinstance(percent, float) or isinstance(percent, bool) or not isinstance(percent, (str, int)):
            problems.add(f"{path}.percent", 'must be a string or a whole number, e.g. "25" (never a float)')
        values = {key: item[key] for key in VAT_CODE_FIELDS if key in item}
        values.setdefault("tax_name", "")
        if len(problems.items) > before:
            continue
        mapping = VatCodeMapping(**values)
        try:
            mapping.full_clean(exclude=["tenant"], validate_unique=False)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                for message in messages:
                    problems.add(f"{path}.{name}" if name != "__all__" else path, message)
            continue
        key = (mapping.system, mapping.tax_name, mapping.percent)
        if key in seen:
            problems.add(path, f"{mapping.system} {mapping.tax_name or 'any tax'} at {mapping.percent} % is mapped "
                               "twice")
            continue
        seen.add(key)
        planned.append({"system": mapping.system, "tax_name": mapping.tax_name, "percent": mapping.percent,
                        "vat_code": mapping.vat_code})
    return planned


# --- writing it ----------------------------------------------------------------------------------------------


def _connection_upsert(tenant: Tenant, plan: _ConnectionPlan) -> Connection:
    connection = Connection.objects.select_for_update().filter(tenant=tenant, system=plan.system).first()
    if connection is None:
        connection = Connection(tenant=tenant, system=plan.system)
    connection.base_url = plan.base_url
    connection.token_url = plan.token_url
    connection.credentials = plan.credentials
    connection.hourly_call_budget = plan.hourly_call_budget
    return connection_save(connection)


def _integration_upsert(tenant: Tenant, visma: Connection, plan: _IntegrationPlan) -> Integration:
    partner = _connection_upsert(tenant, plan.connection)
    integration = Integration.objects.select_for_update().filter(tenant=tenant, kind=plan.kind).first()
    if integration is None:
        integration = Integration(tenant=tenant, kind=plan.kind)
    integration.visma_connection = visma
    integration.partner_connection = partner
    integration.settings = plan.settings
    integration.poll_minutes = plan.poll_minutes
    if plan.enabled is not None:
        integration.enabled = plan.enabled
    try:
        return integration_save(integration)
    except ValidationError as error:
        raise TenantFileError(
            [f"integrations.{plan.kind}.{name}: {message}" for name, messages in error.message_dict.items()
             for message in messages]
        ) from error


def _rule_upsert(tenant: Tenant, values: dict) -> tuple[GLMappingRule, str]:
    """Create or update one rule by (tenant, system, name); an unchanged rule is not saved (no history row)."""
    rule = GLMappingRule.objects.select_for_update().filter(
        tenant=tenant, system=values["system"], name=values["name"]
    ).first()
    outcome = "updated"
    if rule is None:
        rule, outcome = GLMappingRule(tenant=tenant), "created"
    defaults = {name: GLMappingRule._meta.get_field(name).get_default() for name in RULE_FIELDS}
    wanted = {**defaults, **values}
    wanted = {name: GLMappingRule._meta.get_field(name).to_python(value) for name, value in wanted.items()}
    if outcome == "updated" and all(getattr(rule, name) == value for name, value in wanted.items()):
        return rule, "unchanged"
    for name, value in wanted.items():
        setattr(rule, name, value)
    rule._change_reason = "loaded from a tenant file"
    rule.save()
    return rule, outcome


def _vat_code_upsert(tenant: Tenant, values: dict) -> None:
    """Create or update one VAT code mapping by (system, tax name, percent); an unchanged one is not saved."""
    mapping = VatCodeMapping.objects.select_for_update().filter(
        tenant=tenant, system=values["system"], tax_name=values["tax_name"], percent=values["percent"]).first()
    if mapping is not None and mapping.vat_code == values["vat_code"]:
        return
    mapping = mapping or VatCodeMapping(tenant=tenant, **values)
    mapping.vat_code = values["vat_code"]
    mapping._change_reason = "loaded from a tenant file"
    mapping.save()


def tenant_load(document: Any) -> TenantLoadResult:
    """Create or update a tenant from its document, all or nothing; running it again changes nothing."""
    plan = tenant_document_check(document)
    with transaction.atomic():
        defaults: dict[str, Any] = {"name": plan.name}
        if plan.visma_own_numbers is not None:
            defaults["visma_own_numbers"] = plan.visma_own_numbers
        if plan.time_zone is not None:
            defaults["time_zone"] = plan.time_zone
        if plan.visma_release is not None:
            defaults["visma_release"] = plan.visma_release
        tenant, tenant_created = Tenant.objects.update_or_create(slug=plan.slug, defaults=defaults)
        visma = _connection_upsert(tenant, plan.visma)
        integrations = {plan_.kind: _integration_upsert(tenant, visma, plan_) for plan_ in plan.integrations}
        result = TenantLoadResult(tenant=tenant, tenant_created=tenant_created, integrations=integrations)
        for path, values in plan.rules:
            rule, outcome = _rule_upsert(tenant, values)
            setattr(result, f"rules_{outcome}", getattr(result, f"rules_{outcome}") + 1)
            rule = mapping_rule_validate(rule)
            if rule.validation_problems:
                result.rules_not_valid[f"{rule.system} {rule.name!r}"] = list(rule.validation_problems)
        for values in plan.vat_codes:
            _vat_code_upsert(tenant, values)
        result.reference_data_mirrored = GLAccount.objects.filter(tenant=tenant).exists()
        configuration_audit(
            tenant=tenant,
            reason=f"tenant {'created' if tenant_created else 'updated'} from a tenant file",
            details={
                "integrations": {kind: str(integration.pk) for kind, integration in integrations.items()},
                "rules": {"created": result.rules_created, "updated": result.rules_updated,
                          "unchanged": result.rules_unchanged},
            },
        )
    return result


def tenant_file_load(path: str | Path) -> TenantLoadResult:
    return tenant_load(tenant_file_read(path))


# --- checking connections --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCheck:
    system: str
    outcome: str  # OK, FAILED or NOT CHECKED
    message: str

    @property
    def failed(self) -> bool:
        return self.outcome == "FAILED"

    def __str__(self) -> str:
        return f"{self.system}: {self.outcome} — {self.message}"


def connection_check(connection: Connection) -> ConnectionCheck:
    """Are the required credentials there, and does the system accept them (when a client can ask it)?"""
    try:
        connection_credentials(connection)
    except ValidationError as error:
        reasons = [message.removeprefix(f"{connection}: ") for message in error.messages]
        return ConnectionCheck(connection.system, "FAILED", "; ".join(reasons))
    ping = registry.kind_spec(connection.system).ping
    if ping is None:
        return ConnectionCheck(connection.system, "NOT CHECKED",
                               f"no client for {connection.system} in this version")
    try:
        message = ping(connection)
    except Exception as error:  # any failure of the call is the answer we report
        return ConnectionCheck(connection.system, "FAILED", _masked(f"{type(error).__name__}: {error}", connection))
    return ConnectionCheck(connection.system, "OK", _masked(str(message), connection))


def _masked(text: str, connection: Connection) -> str:
    """The text with the connection's secrets (and anything shaped like a credential) replaced by ***."""
    values = []
    for key, value in (connection.credentials or {}).items():
        if key in IDENTIFIER_CREDENTIALS:
            continue
        values.extend(value if isinstance(value, list) else [value])
    for secret in sorted((v for v in values if isinstance(v, str) and len(v) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact(text)


def tenant_connections_check(tenant: Tenant, *, kind: str | None = None) -> list[ConnectionCheck]:
    """Check the tenant's connections, Visma first; with `kind`, only Visma and that system."""
    connections = Connection.objects.filter(tenant=tenant).select_related("tenant")
    if kind:
        connections = connections.filter(system__in=["visma", kind])
    ordered = sorted(connections, key=lambda connection: (connection.system != "visma", connection.system))
    return [connection_check(connection) for connection in ordered]


# --- the demo installation -----------------------------------------------------------------------------------


def tenant_document_point_at_sandbox(document: dict, base_url: str) -> dict:
    """A copy of the document whose URLs on host "sandbox" point at this installation's /sandbox/; the PayPal
    integration then accepts certificates from this installation's host too."""
    document = copy.deepcopy(document)
    root = base_url.rstrip("/") + "/sandbox"

    def rewrite(connection: Any) -> None:
        if not isinstance(connection, dict):
            return
        for key in ("base_url", "token_url"):
            value = connection.get(key)
            if isinstance(value, str) and urlsplit(value).hostname == "sandbox":
                parts = urlsplit(value)
                connection[key] = root + parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")

    rewrite(document.get("visma"))
    for integration in (document.get("integrations") or {}).values():
        rewrite(integration)
    paypal = (document.get("integrations") or {}).get("paypal")
    if isinstance(paypal, dict) and urlsplit(str(paypal.get("base_url") or "")).netloc == urlsplit(root).netloc:
        # The sandbox signs with its own certificate, served from this host: put it on the allow-list, no other.
        integration_settings = paypal.setdefault("settings", {})
        hosts = integration_settings.get("cert_hosts") or list(PAYPAL_CERT_HOSTS)
        integration_settings["cert_hosts"] = [*hosts, urlsplit(root).netloc]
    return document


@dataclass(frozen=True)
class DemoLogin:
    usernames: list[str]
    password: str
    password_file: Path


def demo_logins_ensure() -> DemoLogin:
    """An `admin` superuser and one user per group, sharing a password generated once into VAR_DIR."""
    password_file = Path(settings.VAR_DIR) / "admin-password"
    new_password = not password_file.exists()
    if new_password:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(12) + "\n")
    password_file.chmod(0o600)
    password = password_file.read_text().strip()
    User = get_user_model()
    with transaction.atomic():
        wanted = {"admin": None, **DEMO_USERS}
        for username, group_name in wanted.items():
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": group_name is None}
            )
            # A password file made afresh is the only login anyone was told: bring every demo user to it.
            if created or new_password:
                user.set_password(password)
                user.save()
            if group_name:
                user.groups.add(Group.objects.get(name=group_name))
    return DemoLogin(usernames=list(wanted), password=password, password_file=password_file)


def demo_tenant_load(base_url: str, *, path: Path = DEMO_TENANT_FILE) -> TenantLoadResult | None:
    """The example tenant, pointed at this installation's sandbox; None when the sandbox is off."""
    if not settings.SANDBOX_ENABLED:
        return None
    result = tenant_load(tenant_document_point_at_sandbox(tenant_file_read(path), base_url))
    square = result.integrations.get("square")
    if square is not None and not (square.settings or {}).get("webhook_notification_url"):
        # Square signs over the notification URL its subscription was given (docs/square.md §4), which only this
        # installation knows: the sandbox seller is subscribed at this integration's webhook address.
        square.settings = {**square.settings, "webhook_notification_url": f"{base_url.rstrip('/')}{square.webhook_path}"}
        result.integrations["square"] = integration_save(square)
    return result
