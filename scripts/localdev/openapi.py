"""The OpenAPI 3.1 document of the HTTP API (docs/openapi.json), generated from the code.

    python -m localdev.openapi           # (re)write docs/openapi.json
    python -m localdev.openapi --check   # exit 1 when docs/openapi.json differs from what the code generates

Where each part comes from, so none of it is written twice:
- the routes, which function serves each, whether it needs the API key and which body model API
  Gateway validates: Terraform (`terraform/modules/platform/main.tf`, `local.functions[*].routes`, read
  with python-hcl2 as `localdev.tfdocs` reads modules), the stage name from its `module "api"` block;
- that the function really serves that route, and whether it takes an Idempotency-Key: the handler
  (`lambdas/<function>/handler.py`: its `@app.<method>("<path>")` route and its `idempotency_key()` call);
- the request bodies: the pydantic models in `paystream.models`, the same ones the functions validate
  with and `localdev.api_schemas` turns into the gateway's models (a route's `request_schema` file
  names its model there);
- limits: `paystream.api` (Idempotency-Key length, 64 KiB body) and `paystream.models`;
- the response bodies: the pydantic models below, checked against what the code returns
  (tests/unit/test_openapi.py calls the functions that build each body; tests/e2e/test_openapi_fuzz.py
  checks every answer of the running API with schemathesis).

Why not Powertools' `get_openapi_json_schema()`: each function has its own resolver and reads the raw
event (the handlers are thin on purpose and the API Gateway model checks bodies before them), so
Powertools would see four one-route apps with no body, no headers and no answers but 200/422; the
gateway's own answers (403 without a key, its 400 for a body failing the model, 413, 429) are not the
functions' to describe at all.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from paystream.api import MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LENGTH
from paystream.models import MAX_AMOUNT, TIMESTAMP_PATTERN, Status

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = PROJECT_ROOT / "docs" / "openapi.json"
PLATFORM_MAIN = PROJECT_ROOT / "terraform" / "modules" / "platform" / "main.tf"
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
REGENERATE = "python -m localdev.openapi"
REF_TEMPLATE = "#/components/schemas/{model}"
API_KEY_SCHEME = "ApiKey"

Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN, description="UTC, ISO 8601 with milliseconds.")]


class OpenApiError(Exception):
    """The code does not describe a consistent API (a route without a handler, an undocumented route, ...)."""


# -- response bodies ------------------------------------------------------------------------------
# `extra="forbid"`: a field the code adds without adding it here makes the unit test (and the fuzzing
# run) fail, so the document cannot silently fall behind. Fields without a default are required.


class Payment(BaseModel):
    """The POST /payments answer (201 new, 202 parked, 200 replayed: the original answer again)."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: str
    status: Status = Field(description="`queued` when parked (202) while the payment provider is unavailable.")
    payment_intent_id: str | None = Field(description="The Stripe PaymentIntent; null while queued.")
    client_secret: str | None = Field(description="Lets the client complete a next action (3-D Secure).")
    amount: int = Field(description="Minor units.")
    currency: str = Field(description="ISO 4217, lowercase.")
    created_at: Timestamp


class PaymentEventRef(BaseModel):
    """One stored event of the payment."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The event type, e.g. payment.created, fraud.scored.")
    at: Timestamp
    id: str


class PaymentView(BaseModel):
    """GET /payments/{transaction_id}: the payment's projection and its events in order."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: str
    status: Status
    amount: int
    currency: str
    customer_id: str
    order_id: str
    payment_intent_id: str | None
    risk_score: Annotated[int, Field(ge=0, le=100)] | None = Field(description="Fraud score 0-100, once scored.")
    amount_refunded: int = Field(description="Minor units refunded so far (cumulative).")
    failure_code: str | None
    failure_message: str | None
    created_at: Timestamp
    updated_at: Timestamp
    based_on_event_id: str = Field(description="The last event the projection was folded from.")
    events: list[PaymentEventRef]


class Refund(BaseModel):
    """The POST /payments/{transaction_id}/refunds answer (201 created, 200 replayed)."""

    model_config = ConfigDict(extra="forbid")

    refund_id: str
    transaction_id: str
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] = Field(description="This refund, in minor units.")
    status: str | None = Field(description="Stripe's refund status (pending, succeeded, ...).")
    amount_refunded: int = Field(description="All refunds of the payment so far, in minor units.")
    payment_status: Status


class StripeEvent(BaseModel):
    """A Stripe event as Stripe sends it; verified by its `Stripe-Signature`, stored verbatim."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str


class WebhookReceived(BaseModel):
    """The event is stored (or was already: a duplicate delivery)."""

    model_config = ConfigDict(extra="forbid")

    received: Literal[True]
    duplicate: bool


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path of the field (`metadata.order_ref`), a header name, or `body`.")
    message: str


def _no_default(schema: dict[str, Any]) -> None:
    # An optional field that is never null (absent or a string): pydantic would document its `None` default.
    schema.pop("default", None)


class ValidationError(BaseModel):
    """Invalid input: one entry per problem. From the function, or from API Gateway when the body does not
    match the route's model (then with a `message` and one `body` entry)."""

    model_config = ConfigDict(extra="forbid")

    error: Literal["validation_error"]
    message: str = Field(default=None, json_schema_extra=_no_default)  # type: ignore[assignment]
    details: list[FieldError]


class Error(BaseModel):
    """A refusal by the function: a stable `error` code and a message for people."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str


class GatewayError(BaseModel):
    """API Gateway's own answer (the function never ran)."""

    model_config = ConfigDict(extra="forbid")

    message: str


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Payment, PaymentView, Refund, WebhookReceived, ValidationError, Error, GatewayError,
)


# -- what each route answers -----------------------------------------------------------------------
# Keyed by Terraform's route key. `bodies` name component schemas; several mean any of them.


@dataclass(frozen=True)
class Answer:
    description: str
    bodies: tuple[str, ...]
    headers: tuple[str, ...] = ()


REPLAYED = "Idempotent-Replayed"
RETRY_AFTER = "Retry-After"
_GATEWAY_403 = Answer("Missing or wrong `x-api-key` (API Gateway).", ("GatewayError",))
_THROTTLED = Answer("Throttled by the API key's usage plan or the account's limits (API Gateway in AWS; the local "
                    "stack does not throttle).", ("GatewayError",))
_TOO_LARGE = Answer(f"Body over {MAX_BODY_BYTES // 1024} KiB (`payload_too_large`, from the function), or over API "
                    "Gateway's 10 MB payload limit.", ("Error", "GatewayError"))
_INVALID = Answer("Invalid input: a missing or too long `Idempotency-Key`, a Content-Type other than "
                  "application/json, a body that is not JSON, does not match the request model or has invalid "
                  "values.", ("ValidationError",))
_IN_FLIGHT = Answer("`request_in_progress`: a request with this Idempotency-Key is still being processed; retry "
                    "shortly.", ("Error",))

ROUTES: dict[str, dict[str, Any]] = {
    "POST /payments": {
        "summary": "Create and confirm a payment",
        "description": "The platform creates and confirms the Stripe PaymentIntent with the given payment method. "
                       "The outcome arrives by webhook; follow it with GET /payments/{transaction_id}. No 5xx for "
                       "any client input.",
        "tag": "payments",
        # A payment method Stripe does not know: a fuzzer deriving requests from the example gets failed payments
        # (201, status failed) without creating PaymentIntents and webhooks on a shared test stack.
        "example": {"amount": 4200, "currency": "usd", "customer_id": "cus_example", "payment_method_id": "pm_example",
                    "order_id": "order-1001", "metadata": {"cart": "42"}, "country": "US"},
        "responses": {
            "200": Answer("The same Idempotency-Key and body again: the original answer.", ("Payment",), (REPLAYED,)),
            "201": Answer("New payment (its status is whatever Stripe answered: processing, succeeded, "
                          "requires_action, failed ...).", ("Payment",)),
            "202": Answer("Accepted and parked (`status` = `queued`): the payment provider is unavailable; the "
                          "payment is resumed automatically.", ("Payment",)),
            "400": _INVALID,
            "403": _GATEWAY_403,
            "409": _IN_FLIGHT,
            "413": _TOO_LARGE,
            "422": Answer("`idempotency_key_reused`: this Idempotency-Key was used with a different body.", ("Error",)),
            "429": _THROTTLED,
            "503": Answer("`service_unavailable`: the platform's own AWS capacity throttled the request beyond its "
                          "retries; nothing was charged that the same Idempotency-Key cannot finish: retry with it after "
                          "Retry-After seconds.", ("Error",), (RETRY_AFTER,)),
        },
    },
    "GET /payments/{transaction_id}": {
        "summary": "A payment's state and its events",
        "tag": "payments",
        "responses": {
            "200": Answer("The payment's projection and its events in order.", ("PaymentView",)),
            "403": _GATEWAY_403,
            "404": Answer("`not_found`: no such payment.", ("Error",)),
            "429": _THROTTLED,
        },
    },
    "POST /payments/{transaction_id}/refunds": {
        "summary": "Refund a payment, fully or partly",
        "description": "A missing body or amount refunds everything that is left. Refunds are never parked: while "
                       "the payment provider is unavailable the answer is 503 with Retry-After.",
        "tag": "payments",
        "example": {"amount": 1000, "reason": "requested_by_customer"},
        "responses": {
            "200": Answer("The same Idempotency-Key and body again: the original answer.", ("Refund",), (REPLAYED,)),
            "201": Answer("Refund created (cumulative `amount_refunded`).", ("Refund",)),
            "400": _INVALID,
            "403": _GATEWAY_403,
            "404": Answer("`not_found`: no such payment.", ("Error",)),
            "409": Answer("`payment_not_refundable` (only a succeeded payment can be refunded; not a disputed one), "
                          "or `request_in_progress` (this Idempotency-Key is still being processed).", ("Error",)),
            "413": _TOO_LARGE,
            "422": Answer("`amount_exceeds_refundable` (more than is left to refund), or `idempotency_key_reused` "
                          "(this Idempotency-Key was used with a different body).", ("Error",)),
            "429": _THROTTLED,
            "502": Answer("`provider_error`: Stripe refused the refund for a reason the platform cannot act on.",
                          ("Error",)),
            "503": Answer("`provider_unavailable`: the payment provider is unavailable, or `service_unavailable`: "
                          "the platform's own AWS capacity throttled the request beyond its retries; retry with the "
                          "same Idempotency-Key after Retry-After seconds.", ("Error",), (RETRY_AFTER,)),
        },
    },
    "POST /webhooks/stripe": {
        "summary": "Receive a Stripe webhook",
        "description": "Verified against the configured signing secret(s) with a 300 s tolerance, then stored "
                       "(storage first; processing is asynchronous). Unknown event types are stored and acknowledged.",
        "tag": "webhooks",
        "body_model": StripeEvent,
        "headers": {"Stripe-Signature": "Stripe's `t=...,v1=...` signature over the raw body."},
        "responses": {
            "200": Answer("Stored (also for a duplicate delivery).", ("WebhookReceived",)),
            "400": Answer("`invalid_webhook`: missing or invalid Stripe-Signature, or a body that is not a Stripe "
                          "event.", ("Error",)),
            "403": Answer("Blocked by the stage's WAF web ACL (staging and prod).", ("GatewayError",)),
            "413": Answer("Body over API Gateway's 10 MB payload limit.", ("GatewayError",)),
            "429": _THROTTLED,
        },
    },
}

HEADERS: dict[str, dict[str, Any]] = {
    REPLAYED: {"description": "`true` on a replayed answer.", "required": True,
               "schema": {"type": "string", "const": "true"}},
    RETRY_AFTER: {"description": "Seconds to wait before retrying with the same Idempotency-Key.", "required": True,
                  "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}


# -- routes from Terraform and the handlers ---------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str  # "POST"
    path: str  # "/payments/{transaction_id}"
    function: str  # lambdas/<function>
    api_key_required: bool
    request_schema_file: str | None  # "payment-request.json" (terraform/modules/api/schemas)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _platform() -> dict[str, Any]:
    from localdev.tfdocs import _load

    return _load(PLATFORM_MAIN)


def _labelled(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    from localdev.tfdocs import _label

    for entry in entries:
        for label, body in entry.items():
            if _label(label) == name:
                return body
    raise OpenApiError(f"{PLATFORM_MAIN.relative_to(PROJECT_ROOT)}: no {name!r} block")


def _literal(value: Any) -> Any:
    from localdev.tfdocs import _is_literal, _unescape

    return _unescape(value[1:-1]) if isinstance(value, str) and _is_literal(value) else value


def terraform_routes(platform: dict[str, Any] | None = None) -> list[Route]:
    """The API's routes as Terraform deploys them (`local.functions[*].routes`)."""
    from localdev.tfdocs import _label

    platform = _platform() if platform is None else platform
    functions = next((entry["functions"] for entry in platform.get("locals", []) if "functions" in entry), None)
    if functions is None:
        raise OpenApiError(f"{PLATFORM_MAIN.relative_to(PROJECT_ROOT)}: no local.functions")
    routes = []
    for function, spec in functions.items():
        for key, settings in (spec.get("routes") or {}).items():
            method, _, path = _label(key).partition(" ")
            schema = settings.get("request_schema")
            found = re.search(r"schemas/([\w.-]+\.json)", schema) if isinstance(schema, str) else None
            if schema is not None and found is None:
                raise OpenApiError(f"route {_label(key)}: cannot tell which schema file request_schema reads: {schema}")
            routes.append(Route(method, path, _label(function), settings.get("api_key_required") is True,
                                found.group(1) if found else None))
    return sorted(routes, key=lambda r: (r.path, r.method))


def stage_name(platform: dict[str, Any] | None = None) -> str:
    platform = _platform() if platform is None else platform
    return _literal(_labelled(platform.get("module", []), "api")["stage_name"])


def gateway_response_templates(platform: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """The API's gateway responses: response type -> content type -> template."""
    platform = _platform() if platform is None else platform
    responses = _labelled(platform.get("module", []), "api").get("gateway_responses") or {}
    return {_literal(kind): {_literal(ctype): _literal(template)
                             for ctype, template in (spec.get("response_templates") or {}).items()}
            for kind, spec in responses.items()}


@dataclass(frozen=True)
class HandlerRoute:
    method: str
    path: str  # in API Gateway's spelling: "/payments/{transaction_id}"
    takes_idempotency_key: bool  # calls paystream.api.idempotency_key()
    body_required: bool  # parse_json_body(...) without required=False; a handler that parses no model reads a body
    headers_read: frozenset[str]  # `<...>.headers.get("<name>")` with a literal name


def _route_of(decorator: ast.expr) -> tuple[str, str] | None:
    if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and isinstance(decorator.func.value, ast.Name) and decorator.func.value.id == "app"
            and decorator.func.attr in ("get", "post", "put", "patch", "delete")
            and decorator.args and isinstance(decorator.args[0], ast.Constant)):
        return decorator.func.attr.upper(), re.sub(r"<(\w+)>", r"{\1}", decorator.args[0].value)
    return None


def handler_routes(function: str) -> list[HandlerRoute]:
    """The routes lambdas/<function>/handler.py registers on its resolver (`@app.<method>("<path>")`), with
    what each route's function reads from the request."""
    path = LAMBDAS_DIR / function / "handler.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for route in filter(None, map(_route_of, node.decorator_list)):
            calls = [sub for sub in ast.walk(node) if isinstance(sub, ast.Call)]
            named = {call.func.id: call for call in calls if isinstance(call.func, ast.Name)}
            parse = named.get("parse_json_body")
            optional = parse is not None and any(
                kw.arg == "required" and isinstance(kw.value, ast.Constant) and kw.value.value is False
                for kw in parse.keywords)
            headers = {call.args[0].value for call in calls
                       if isinstance(call.func, ast.Attribute) and call.func.attr == "get"
                       and isinstance(call.func.value, ast.Attribute) and call.func.value.attr == "headers"
                       and call.args and isinstance(call.args[0], ast.Constant)}
            found.append(HandlerRoute(*route, "idempotency_key" in named, not optional, frozenset(headers)))
    return found


def request_models() -> dict[str, type[BaseModel]]:
    """Gateway schema file -> the pydantic model it is generated from (localdev.api_schemas)."""
    from localdev import api_schemas

    return api_schemas._request_models()


# -- the document ---------------------------------------------------------------------------------


def _components(body_models: list[type[BaseModel]]) -> dict[str, Any]:
    models = list(dict.fromkeys([*body_models, *RESPONSE_MODELS]))
    _, schemas = models_json_schema([(model, "validation") for model in models], ref_template=REF_TEMPLATE)
    return dict(sorted(schemas.get("$defs", {}).items()))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _operation(route: Route, handler: HandlerRoute, body_model: type[BaseModel] | None, doc: dict[str, Any]) -> dict:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                  for name in re.findall(r"{(\w+)}", route.path)]
    if handler.takes_idempotency_key:
        parameters.append({
            "name": "Idempotency-Key", "in": "header", "required": True,
            "description": "A unique key per attempt: the same key and body again answer the original response.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
        })
    for name, description in sorted((doc.get("headers") or {}).items()):
        # Every header a handler reads itself is required: without it the answer is a 400.
        parameters.append({"name": name, "in": "header", "required": True, "description": description,
                           "schema": {"type": "string"}})
    operation: dict[str, Any] = {
        "operationId": route.function,
        "summary": doc["summary"],
        "tags": [doc["tag"]],
    }
    if doc.get("description"):
        operation["description"] = doc["description"]
    if parameters:
        operation["parameters"] = parameters
    if body_model is not None:
        media: dict[str, Any] = {"schema": _ref(body_model.__name__)}
        if doc.get("example") is not None:
            media["example"] = doc["example"]
        # The refund body is optional (parse_json_body(required=False)): none, or an empty one, is a full refund.
        operation["requestBody"] = {"required": handler.body_required, "content": {"application/json": media}}
    responses = {}
    for status, answer in sorted(doc["responses"].items()):
        schemas = [_ref(name) for name in answer.bodies]
        response: dict[str, Any] = {
            "description": answer.description,
            "content": {"application/json": {"schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}}},
        }
        if answer.headers:
            response["headers"] = {name: HEADERS[name] for name in answer.headers}
        responses[status] = response
    operation["responses"] = responses
    operation["security"] = [{API_KEY_SCHEME: []}] if route.api_key_required else []
    return operation


def _link_by_transaction_id(paths: dict[str, dict[str, Any]], components: dict[str, Any]) -> None:
    """OpenAPI links from every success answer whose body names a payment (`transaction_id`) to every operation
    on that payment: how a client goes on from one answer to the next (and what schemathesis' stateful
    phase follows)."""
    consumers = {op["operationId"]: path for path, item in paths.items() for op in item.values()
                 if "{transaction_id}" in path}
    for item in paths.values():
        for op in item.values():
            for status, response in op["responses"].items():
                ref = response["content"]["application/json"]["schema"].get("$ref", "")
                body = components.get(ref.rsplit("/", 1)[-1], {})
                if status.startswith("2") and "transaction_id" in body.get("properties", {}):
                    response["links"] = {
                        operation_id: {"operationId": operation_id,
                                       "parameters": {"transaction_id": "$response.body#/transaction_id"}}
                        for operation_id in sorted(consumers)}


def build(platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI document for the routes Terraform deploys; OpenApiError when the code disagrees with itself."""
    platform = _platform() if platform is None else platform
    routes = terraform_routes(platform)
    keys = {route.key for route in routes}
    if keys != set(ROUTES):
        raise OpenApiError(
            f"routes deployed by Terraform {sorted(keys)} differ from those documented in localdev/openapi.py "
            f"{sorted(ROUTES)}: describe the new route's answers in ROUTES")
    models = request_models()
    paths: dict[str, dict[str, Any]] = {}
    body_models: list[type[BaseModel]] = []
    for route in routes:
        served = [h for h in handler_routes(route.function) if (h.method, h.path) == (route.method, route.path)]
        if len(served) != 1:
            raise OpenApiError(f"{route.key}: lambdas/{route.function}/handler.py does not register this route "
                               f"(@app.{route.method.lower()}(...)) exactly once")
        doc = ROUTES[route.key]
        if served[0].headers_read != set(doc.get("headers") or {}):
            raise OpenApiError(f"{route.key}: lambdas/{route.function}/handler.py reads the headers "
                               f"{sorted(served[0].headers_read)}, ROUTES documents {sorted(doc.get('headers') or {})}")
        if route.request_schema_file is not None:
            if route.request_schema_file not in models:
                raise OpenApiError(f"{route.key}: no pydantic model generates {route.request_schema_file} "
                                   "(localdev.api_schemas)")
            body_model = models[route.request_schema_file]
        else:
            body_model = doc.get("body_model")
        if body_model is not None:
            body_models.append(body_model)
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, served[0], body_model, doc)
    components = _components(body_models)
    _link_by_transaction_id(paths, components)
    stage = stage_name(platform)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "paystream API",
            "version": _project_version(),
            "description": (
                "paystream's HTTP API (API Gateway REST API, stage `" + stage + "`). JSON bodies with snake_case "
                "fields, amounts in minor units, ISO 4217 currencies. Generated from the code by `" + REGENERATE
                + "`: do not edit by hand."),
        },
        "servers": [
            {"url": "https://{api_id}.execute-api.{region}.amazonaws.com/" + stage,
             "description": f"An environment's API stage `{stage}` (terraform output api_url).",
             "variables": {"api_id": {"default": "api_id"}, "region": {"default": "us-east-1"}}},
            {"url": "http://127.0.0.1:4567/" + stage,
             "description": "The local stack (`make local-up`; .local/outputs.json api_url, ports may differ)."},
        ],
        "tags": [{"name": "payments"}, {"name": "webhooks"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {API_KEY_SCHEME: {
                "type": "apiKey", "in": "header", "name": "x-api-key",
                "description": "The client's API Gateway API key (terraform output api_key locally).",
            }},
        },
    }


def _project_version() -> str:
    import tomllib

    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def render(document: dict[str, Any] | None = None) -> str:
    return json.dumps(build() if document is None else document, indent=2, ensure_ascii=False) + "\n"


def is_stale(text: str | None = None) -> bool:
    text = render() if text is None else text
    return not DOC_PATH.is_file() or DOC_PATH.read_text(encoding="utf-8") != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/openapi.json is stale")
    args = parser.parse_args(argv)
    try:
        text = render()
    except OpenApiError as exc:
        print(f"openapi: {exc}", file=sys.stderr)
        return 1
    stale = is_stale(text)
    if args.check:
        if stale:
            print(f"out of date: {DOC_PATH.relative_to(PROJECT_ROOT)} (run {REGENERATE})", file=sys.stderr)
        return 1 if stale else 0
    if stale:
        DOC_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
