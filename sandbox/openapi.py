"""The vendors' published OpenAPI files, loaded once per process, and the request checks built on them."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

logger = logging.getLogger(__name__)

VISMA_SPEC_RELATIVE_PATH = "specs/visma-net-erp/swagger.json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# The date formats Visma lists for every *DateTime query parameter (spec parameter descriptions).
VISMA_DATETIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
)
VISMA_DATETIME_CONDITIONS = (">", "<", ">=", "<=")


def visma_datetime_parse(text: str) -> datetime | None:
    """A query date in one of Visma's accepted formats (naive: the caller decides the zone), or None."""
    for pattern in VISMA_DATETIME_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _body_datetime_ok(instance: object) -> bool:
    # Visma (Newtonsoft) reads ISO 8601 with or without an offset, e.g. "2026-01-31T00:00:00".
    if not isinstance(instance, str):
        return True
    try:
        datetime.fromisoformat(instance)
    except ValueError:
        return False
    return True


def _int_in_range(bits: int):
    def check(instance: object) -> bool:
        if isinstance(instance, bool) or not isinstance(instance, int):
            return True
        return -(1 << (bits - 1)) <= instance < (1 << (bits - 1))

    return check


def _uuid_ok(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        uuid.UUID(instance)
    except ValueError:
        return False
    return True


FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(_body_datetime_ok)
FORMAT_CHECKER.checks("int32")(_int_in_range(32))
FORMAT_CHECKER.checks("int64")(_int_in_range(64))
FORMAT_CHECKER.checks("uuid")(_uuid_ok)


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


def _schema_tighten(schema: Any, seen: set[int]) -> None:
    """Make the document say what the server enforces: objects are objects, and no undeclared properties.

    Visma's schemas often omit `type: object` (a bare string then passes where `{"value": ...}` is required) and
    never close their objects; Visma drops an unknown property silently, which hides a misspelt field, so the
    check reports it. Strings and DtoValueOfNullableOf* values accept null, as the .NET server does.
    """
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        schema.setdefault("type", "object")
        schema.setdefault("additionalProperties", False)
        for property_schema in properties.values():
            if isinstance(property_schema, dict) and property_schema.get("type") == "string":
                property_schema["nullable"] = True
            _schema_tighten(property_schema, seen)
    for key in ("items", "additionalProperties", "not"):
        _schema_tighten(schema.get(key), seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, []) or []:
            _schema_tighten(part, seen)


class OpenApiDocument:
    """An OpenAPI 3.0 document indexed by method and path template, with one validator per schema, built on use."""

    def __init__(self, path: Path, *, title: str):
        started = time.perf_counter()
        self.path = path
        self.title = title
        with path.open("rb") as spec_file:
            self.document = json.load(spec_file)
        schemas = self.document.get("components", {}).get("schemas", {})
        seen: set[int] = set()
        for name, schema in schemas.items():
            if name.startswith("DtoValueOfNullableOf"):
                schema.get("properties", {}).get("value", {})["nullable"] = True
            _schema_tighten(schema, seen)
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

    def _operation_build(self, method: str, template: str, spec: dict, shared: list) -> Operation:
        query_parameters = {}
        for parameter in [*shared, *spec.get("parameters", [])]:
            if "$ref" in parameter:
                parameter = self._pointer_resolve(parameter["$ref"])
            if parameter.get("in") == "query":
                query_parameters[parameter["name"]] = parameter
        here = f"#/paths/{_pointer_escape(template)}/{method}"
        body_schema = None
        body_required = False
        request_body = spec.get("requestBody")
        if request_body:
            body_at = f"{here}/requestBody"
            if "$ref" in request_body:
                body_at, request_body = request_body["$ref"], self._pointer_resolve(request_body["$ref"])
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

    def _pointer_resolve(self, reference: str) -> dict:
        node: Any = self.document
        for part in reference.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def operation_find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving `method path` and its path parameters; literal segments win over templates."""
        segments = tuple(part for part in path.strip("/").split("/"))
        best: tuple[int, Operation, dict[str, str]] | None = None
        for operation in self.operations.get(method.lower(), {}).get(len(segments), []):
            literal_matches = 0
            parameters: dict[str, str] = {}
            for expected, actual in zip(operation.segments, segments):
                if expected.startswith("{") and expected.endswith("}"):
                    parameters[expected[1:-1]] = actual
                elif expected.lower() == actual.lower():
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
        return problems

    def response_problems(self, operation: Operation, status: int, body: Any) -> list[str]:
        """Where a response body disagrees with the declared schema on types, shapes and enums.

        Read DTOs are open (Visma adds fields such as timeStamp over time) and carry nulls the 3.0 document does
        not declare, so unknown properties and nulls are not reported here.
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

    def query_problems(self, operation: Operation, query: Mapping[str, Any]) -> list[str]:
        problems = []
        declared = operation.query_parameters
        for name, raw in query.items():
            parameter = declared.get(name)
            if parameter is None:
                hint = next((known for known in declared if known.lower() == name.lower()), None)
                suffix = f" (did you mean '{hint}'?)" if hint else ""
                problems.append(
                    f"{name}: query parameter not declared for {operation.method.upper()} {operation.template}{suffix}"
                )
                continue
            values = raw if isinstance(raw, (list, tuple)) else [raw]
            for value in values:
                problem = _query_value_problem(name, parameter.get("schema", {}), value)
                if problem:
                    problems.append(problem)
        for name in declared:
            if not name.endswith("Condition") or name[: -len("Condition")] not in declared:
                continue
            # Visma documents each date filter and its condition as "mutually inclusive".
            base = name[: -len("Condition")]
            if (base in query) != (name in query):
                present, missing = (base, name) if base in query else (name, base)
                problems.append(f"{missing}: required together with {present}")
            if base in query and visma_datetime_parse(_first(query[base])) is None:
                problems.append(
                    f"{base}: '{_first(query[base])}' is not in an accepted format "
                    "(yyyy-MM-dd, yyyy-MM-dd HH:mm:ss[.FFF], yyyy-MM-ddTHH:mm:ss[.FFF])"
                )
            if name in query and _first(query[name]) not in VISMA_DATETIME_CONDITIONS:
                problems.append(f"{name}: '{_first(query[name])}' is not one of >, <, >=, <=")
        return problems


def _nulls_dropped(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _nulls_dropped(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_nulls_dropped(item) for item in node]
    return node


def _pointer_escape(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value)


def _query_value_problem(name: str, schema: dict, value: Any) -> str | None:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    kind = schema.get("type")
    if kind == "integer":
        try:
            int(text)
        except ValueError:
            return f"{name}: '{text}' is not an integer"
    elif kind == "number":
        try:
            float(text)
        except ValueError:
            return f"{name}: '{text}' is not a number"
    elif kind == "boolean" and text.lower() not in ("true", "false"):
        return f"{name}: '{text}' is not true or false"
    if "enum" in schema and text not in schema["enum"]:
        return f"{name}: '{text}' is not one of {', '.join(map(str, schema['enum']))}"
    return None


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


_documents: dict[str, OpenApiDocument] = {}
_documents_lock = threading.Lock()


def visma_openapi() -> OpenApiDocument:
    """The Visma.net ERP document, loaded on first use and kept for the life of the process."""
    document = _documents.get("visma")
    if document is None:
        with _documents_lock:
            document = _documents.get("visma")
            if document is None:
                path = Path(settings.SHARED_DIR) / VISMA_SPEC_RELATIVE_PATH
                document = OpenApiDocument(path, title="Visma.net ERP API")
                _documents["visma"] = document
    return document


def visma_api_path(path_or_url: str) -> tuple[str, dict[str, list[str]]]:
    """The API path (from /v1 or /v2 on) and query of a URL or path under any base, e.g. /sandbox/visma/v1/customer."""
    parts = urlsplit(path_or_url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if len(segment) >= 2 and segment[0] in "vV" and segment[1:].isdigit():
            api_path = "/" + "/".join(segments[index:])
            break
    else:
        api_path = parts.path
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    return api_path, query


def visma_request_problems(
    method: str, path: str, body: dict | list | None, query: Mapping[str, Any] | None = None
) -> list[str]:
    """What the published Visma.net ERP OpenAPI file says is wrong with this request; empty when nothing is.

    `path` may be a bare API path (/v1/customer/10001) or a full URL under any base; a query string in it is checked
    together with `query`. The body is checked against the operation's application/json requestBody schema,
    the query parameter names and simple values against the operation's declared parameters.
    """
    document = visma_openapi()
    api_path, url_query = visma_api_path(path)
    merged_query: dict[str, Any] = {**url_query, **dict(query or {})}
    found = document.operation_find(method, api_path)
    if found is None:
        return [f"{method.upper()} {api_path} is not an operation of the {document.title}"]
    operation, _ = found
    return [*document.query_problems(operation, merged_query), *document.body_problems(operation, body)]


def visma_response_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """What the published Visma.net ERP OpenAPI file says is wrong with a response body (types, shapes, enums);
    used to keep the sandbox's read DTOs, and recorded payloads, shaped like Visma's."""
    document = visma_openapi()
    api_path, _ = visma_api_path(path)
    found = document.operation_find(method, api_path)
    if found is None:
        return [f"{method.upper()} {api_path} is not an operation of the {document.title}"]
    return document.response_problems(found[0], status, body)
