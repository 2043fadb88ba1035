"""An OpenAPI 3.0 document indexed by method and path template, with request and response checks, loaded once."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

logger = logging.getLogger(__name__)

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# The vendors' published documents ship with the repository; vendor_specs/README.md says where each came from.
VENDOR_SPECS_DIR = Path(__file__).resolve().parent / "vendor_specs"
VENDOR_SPECS_RESTORE = (
    "The vendor documents ship with the repository (sandbox/vendor_specs/README.md); "
    "restore them with `git checkout -- sandbox/vendor_specs`."
)


class VendorSpecUnreadable(ImproperlyConfigured):
    """A vendor document the sandbox needs is missing or cannot be read; the message names the file."""


def vendor_spec_path(relative: str) -> Path:
    """Where the vendor document `relative` (e.g. stripe/spec3.yaml) lives in this repository."""
    return VENDOR_SPECS_DIR / relative


def vendor_spec_shown(path: Path) -> str:
    """The path as an operator finds it: relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(path)


def vendor_spec_unreadable(path: Path, title: str, problem: str) -> VendorSpecUnreadable:
    return VendorSpecUnreadable(f"The sandbox cannot read {title} from {vendor_spec_shown(path)}: {problem}. "
                                f"{VENDOR_SPECS_RESTORE}")


def _parses(parse: Callable[[str], object]) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        try:
            parse(instance)
        except ValueError:
            return False
        return True

    return check


def _int_in_range(bits: int) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if isinstance(instance, bool) or not isinstance(instance, int):
            return True
        return -(1 << (bits - 1)) <= instance < (1 << (bits - 1))

    return check


FORMAT_CHECKER = FormatChecker(formats=())
# Visma (Newtonsoft) reads ISO 8601 with or without an offset, e.g. "2026-01-31T00:00:00".
FORMAT_CHECKER.checks("date-time")(_parses(datetime.fromisoformat))
FORMAT_CHECKER.checks("int32")(_int_in_range(32))
FORMAT_CHECKER.checks("int64")(_int_in_range(64))
FORMAT_CHECKER.checks("uuid")(_parses(uuid.UUID))


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the document, with what a request to it may carry."""

    method: str
    template: str
    operation_id: str
    query_parameters: Mapping[str, dict] = field(default_factory=dict)
    body_schema: str | None = None  # a JSON pointer into the document, e.g. #/components/schemas/CustomerUpdateDto
    body_required: bool = False
    response_schemas: Mapping[str, str] = field(default_factory=dict)  # status → JSON pointer

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))


def pointer_resolve(document: dict, reference: str) -> Any:
    """The node a local JSON pointer (#/components/schemas/Money) names in `document`."""
    node: Any = document
    for part in reference.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class OpenApiIndex:
    """A vendor's OpenAPI 3.0 document indexed by method and path template, with one validator per schema, built on
    use. A vendor's subclass says how its document is prepared and how its query parameters are checked."""

    # PayPal's allOf parts repeat one error several times; a vendor sets this to report each once.
    problems_deduplicated = False
    # Visma answers /v1/Customer as /v1/customer; Stripe refuses a path spelt in another case.
    literals_case_sensitive = False

    def __init__(self, path: Path, *, title: str):
        started = time.perf_counter()
        self.path = path
        self.title = title
        try:
            with path.open("rb") as spec_file:
                document = self.document_read(spec_file)
        except Exception as error:  # whatever the parser raises, the operator needs the file's name
            raise vendor_spec_unreadable(path, title, f"{type(error).__name__}: {error}") from error
        if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            raise vendor_spec_unreadable(path, title, "it is not an OpenAPI document (no paths)")
        self.document = self.document_prepare(document)
        self.base_uri = f"urn:openapi:{path.name}"
        self.registry = Registry().with_resource(
            self.base_uri, Resource.from_contents(self.document, default_specification=DRAFT4)
        )
        self.operations: dict[str, dict[int, list[Operation]]] = {}
        for template, path_item in self.document.get("paths", {}).items():
            shared_parameters = path_item.get("parameters", [])
            for method in HTTP_METHODS:
                if method not in path_item:
                    continue
                operation = self._operation_build(method, template, path_item[method], shared_parameters)
                by_length = self.operations.setdefault(method, {})
                by_length.setdefault(len(operation.segments), []).append(operation)
        self._validators: dict[str, Any] = {}
        self.load_seconds = time.perf_counter() - started
        logger.info("Loaded %s (%s) in %.3f s", title, path.name, self.load_seconds)

    def document_read(self, spec_file: BinaryIO) -> dict:
        return json.load(spec_file)

    def document_prepare(self, document: dict) -> dict:
        """The document as the checks should read it; the vendor's subclass makes it say what the server enforces."""
        return document

    @property
    def name_in_problems(self) -> str:
        return self.title

    def query_problems(self, operation: Operation, query: Mapping[str, Any]) -> list[str]:
        """Names the operation does not declare, then each value and the combination, as the vendor checks them."""
        problems = []
        declared = operation.query_parameters
        for name, raw in query.items():
            parameter = declared.get(name)
            if parameter is None:
                problems.append(
                    f"{name}: query parameter not declared for {operation.method.upper()} {operation.template}"
                    f"{self.query_name_hint(name, declared)}"
                )
                continue
            for value in raw if isinstance(raw, (list, tuple)) else [raw]:
                problems.extend(self.query_value_problems(name, parameter.get("schema", {}), value))
        return [*problems, *self.query_combination_problems(declared, query)]

    def query_name_hint(self, name: str, declared: Mapping[str, dict]) -> str:
        return ""

    def query_value_problems(self, name: str, schema: dict, value: Any) -> list[str]:
        return []

    def query_combination_problems(self, declared: Mapping[str, dict], query: Mapping[str, Any]) -> list[str]:
        return []

    def _operation_build(self, method: str, template: str, spec: dict, shared: list) -> Operation:
        query_parameters = {}
        for parameter in [*shared, *spec.get("parameters", [])]:
            if "$ref" in parameter:
                parameter = pointer_resolve(self.document, parameter["$ref"])
            if parameter.get("in") == "query":
                query_parameters[parameter["name"]] = parameter
        here = f"#/paths/{_pointer_escape(template)}/{method}"
        body_schema = None
        body_required = False
        request_body = spec.get("requestBody")
        if request_body:
            body_at = f"{here}/requestBody"
            if "$ref" in request_body:
                body_at, request_body = request_body["$ref"], pointer_resolve(self.document, request_body["$ref"])
            body_required = bool(request_body.get("required"))
            media = request_body.get("content", {}).get("application/json")
            if media is not None and "schema" in media:
                body_schema = media["schema"].get("$ref") or f"{body_at}/content/application~1json/schema"
        response_schemas = {}
        for status, response in spec.get("responses", {}).items():
            media = response.get("content", {}).get("application/json")
            if media is not None and "schema" in media:
                response_schemas[status] = (
                    media["schema"].get("$ref") or f"{here}/responses/{status}/content/application~1json/schema"
                )
        return Operation(
            method=method,
            template=template,
            operation_id=spec.get("operationId", f"{method} {template}"),
            query_parameters=query_parameters,
            body_schema=body_schema,
            body_required=body_required,
            response_schemas=response_schemas,
        )

    def operation_find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving `method path` and its path parameters; literal segments win over templates."""
        segments = tuple(part for part in path.strip("/").split("/"))
        fold = str if self.literals_case_sensitive else str.lower
        best: tuple[int, Operation, dict[str, str]] | None = None
        for operation in self.operations.get(method.lower(), {}).get(len(segments), []):
            literal_matches = 0
            parameters: dict[str, str] = {}
            for expected, actual in zip(operation.segments, segments):
                if expected.startswith("{") and expected.endswith("}"):
                    parameters[expected[1:-1]] = actual
                elif fold(expected) == fold(actual):
                    literal_matches += 1
                else:
                    break
            else:
                if best is None or literal_matches > best[0]:
                    best = (literal_matches, operation, parameters)
        return (best[1], best[2]) if best else None

    def schema_validator(self, reference: str):
        """A validator for the schema at `reference` (a JSON pointer into the document), built once."""
        validator = self._validators.get(reference)
        if validator is None:
            validator = OAS30Validator(
                {"$ref": f"{self.base_uri}{reference}"}, registry=self.registry, format_checker=FORMAT_CHECKER
            )
            self._validators[reference] = validator
        return validator

    def body_problems(self, operation: Operation, body: Any) -> list[str]:
        if body is None:
            return ["request body is required"] if operation.body_required else []
        if operation.body_schema is None:
            return [f"{operation.method.upper()} {operation.template} takes no JSON request body"]
        problems = []
        errors = self.schema_validator(operation.body_schema).iter_errors(body)
        for error in sorted(errors, key=lambda error: [str(part) for part in error.absolute_path]):
            problems.extend(_error_describe(error))
        return list(dict.fromkeys(problems)) if self.problems_deduplicated else problems

    def response_problems(self, operation: Operation, status: int, body: Any) -> list[str]:
        """Where a response body disagrees with the declared schema on types, shapes and enums.

        Read DTOs are open (vendors add fields such as Visma's timeStamp over time) and carry nulls the 3.0 document
        does not declare, so unknown properties and nulls are not reported here.
        """
        reference = operation.response_schemas.get(str(status))
        if reference is None:
            return [f"{operation.method.upper()} {operation.template} declares no JSON response for {status}"]
        problems = []
        errors = self.schema_validator(reference).iter_errors(_nulls_dropped(body))
        for error in sorted(errors, key=lambda error: [str(part) for part in error.absolute_path]):
            if error.validator != "additionalProperties":
                problems.extend(_error_describe(error))
        return problems

    def request_problems(self, method: str, api_path: str, body: Any, query: Mapping[str, Any]) -> list[str]:
        """What the document says is wrong with this request (path, query, JSON body); empty when nothing is."""
        found = self.operation_find(method, api_path)
        if found is None:
            return [self._operation_unknown(method, api_path)]
        operation, _ = found
        return [*self.query_problems(operation, query), *self.body_problems(operation, body)]

    def response_problems_at(self, method: str, api_path: str, status: int, body: Any) -> list[str]:
        """What the document says is wrong with the response body of `method api_path` at `status`."""
        found = self.operation_find(method, api_path)
        if found is None:
            return [self._operation_unknown(method, api_path)]
        return self.response_problems(found[0], status, body)

    def _operation_unknown(self, method: str, api_path: str) -> str:
        return f"{method.upper()} {api_path} is not an operation of {self.name_in_problems}"


Index = TypeVar("Index", bound=OpenApiIndex)
_indexes: dict[str, OpenApiIndex] = {}
_indexes_lock = threading.Lock()


def openapi_index_cached(key: str, build: Callable[[], Index]) -> Index:
    """The index kept under `key` for the life of the process, built by `build` on first use (about 1 s each)."""
    index = _indexes.get(key)
    if index is None:
        with _indexes_lock:
            index = _indexes.get(key)
            if index is None:
                index = build()
                _indexes[key] = index
    return index  # type: ignore[return-value]


def _nulls_dropped(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _nulls_dropped(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_nulls_dropped(item) for item in node]
    return node


def _pointer_escape(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


def _field_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def _error_describe(error) -> list[str]:
    where = _field_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        declared = error.schema.get("properties", {})
        unexpected = sorted(name for name in error.instance if name not in declared)
        prefix = f"{where}." if error.absolute_path else ""
        return [f"{prefix}{name}: unknown property" for name in unexpected]
    if error.validator == "type":
        return [f"{where}: {json.dumps(error.instance)[:80]} is not of type {error.validator_value}"]
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return [f"{where}: {json.dumps(error.instance)[:80]} is not one of {allowed}"]
    if error.validator == "format":
        return [f"{where}: {json.dumps(error.instance)[:80]} is not a valid {error.validator_value}"]
    return [f"{where}: {error.message}"]


def schema_objects_close(schema: Any, seen: set[int] | None = None) -> None:
    """Make every schema with properties an object that declares all of them (in place), so a misspelt request field
    is reported, not silently ignored (Square answers one with UNKNOWN_BODY_PARAMETER: spec ErrorCode). Examples are
    data, not schemas: left as they are."""
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        for item in schema:
            schema_objects_close(item, seen)
        return
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema.get("properties"), dict):
        schema.setdefault("type", "object")
        schema.setdefault("additionalProperties", False)
    for key, value in schema.items():
        if key != "example":
            schema_objects_close(value, seen)
