"""Stripe's published OpenAPI file (shared/specs/stripe/spec3.yaml), loaded once, and the check the emulator makes of
each request: the path and method exist, and every top-level parameter is one Stripe documents for it."""
from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml
from django.conf import settings

STRIPE_SPEC_RELATIVE_PATH = "specs/stripe/spec3.yaml"
_lock = threading.Lock()


@cache
def _operations() -> list[tuple[re.Pattern, str, frozenset[str]]]:
    """(path pattern, method, parameter names) of every operation in the file; read once (about 2 s)."""
    with _lock, open(Path(settings.SHARED_DIR) / STRIPE_SPEC_RELATIVE_PATH, encoding="utf-8") as spec_file:
        document = yaml.load(spec_file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    operations = []
    for template, methods in document["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method, operation in methods.items():
            if method not in ("get", "post", "delete"):
                continue
            names = {parameter["name"] for parameter in operation.get("parameters") or []
                     if parameter.get("in") == "query"}
            form = ((operation.get("requestBody") or {}).get("content") or {}).get(
                "application/x-www-form-urlencoded") or {}
            names |= set((form.get("schema") or {}).get("properties") or {})
            # A literal path (/v1/customers/search) must win over a template (/v1/customers/{customer}).
            operations.append((pattern, method, frozenset(names), template.count("{")))
    operations.sort(key=lambda operation: operation[3])
    return [(pattern, method, names) for pattern, method, names, _ in operations]


def stripe_request_problems(method: str, path: str, params: Mapping[str, object]) -> list[str]:
    """What in this request Stripe's OpenAPI file does not allow; empty when it is a documented call."""
    method = method.lower()
    for pattern, operation_method, names in _operations():
        if operation_method == method and pattern.match(path):
            return [f"Received unknown parameter: {name}" for name in params if name not in names]
    return [f"Unrecognized request URL ({method.upper()}: {path})."]
