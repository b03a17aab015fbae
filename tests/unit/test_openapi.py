"""docs/openapi.json against the code it is generated from (python -m localdev.openapi).

The committed document must be what the generator produces now, a valid OpenAPI 3.1 document, list
exactly the routes the handlers serve and Terraform deploys, describe request bodies of the same shape
as the API Gateway models (localdev.api_schemas), and describe the bodies the code really answers with.
tests/e2e/test_openapi_fuzz.py checks the running API against it.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time

import boto3
import pytest
import stripe
from jsonschema import Draft202012Validator
from lambda_testing import LAMBDAS, LambdaContext, create_transactions_table, load_handler
from moto import mock_aws

from localdev import api_schemas, openapi
from localdev.dataplane.apigw import gateway_response
from localdev.dataplane.discovery import RestApiSpec
from paystream import payments, refunds
from paystream.api import ApiError, idempotency_key, idempotency_refusals, invalid, parse_json_body
from paystream.models import PaymentRequest, RefundRequest
from paystream.states import created_event, next_event, apply

DOC = json.loads(openapi.DOC_PATH.read_text(encoding="utf-8"))


def operations(doc: dict = DOC) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}


def response_validator(method: str, path: str, status: int) -> Draft202012Validator:
    """A validator for the body the document promises for that answer (its $refs resolved in the document)."""
    responses = operations()[(method, path)]["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": DOC["components"]})


def assert_documented(method: str, path: str, status: int, body: dict) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in response_validator(method, path, status).iter_errors(body)]
    assert errors == [], f"{method} {path} {status} body {body} does not match the document: {errors}"


# -- drift ----------------------------------------------------------------------------------------


def test_committed_document_is_what_the_code_generates():
    assert not openapi.is_stale(), "docs/openapi.json is stale: run `python -m localdev.openapi` (make openapi)"
    assert openapi.main(["--check"]) == 0


def test_a_model_change_without_regenerating_is_reported(monkeypatch, capsys):
    class PaymentRequestWithTip(PaymentRequest):
        tip: int | None = None

    models = openapi.request_models()
    monkeypatch.setitem(models, "payment-request.json", PaymentRequestWithTip)
    monkeypatch.setattr(openapi, "request_models", lambda: models)
    assert "tip" in openapi.render()
    assert openapi.is_stale()
    assert openapi.main(["--check"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "out of date: docs/openapi.json (run python -m localdev.openapi)"]


def test_a_route_deployed_without_its_answers_described_is_refused():
    platform = openapi._platform()
    changed = copy.deepcopy(platform)
    functions = next(entry["functions"] for entry in changed["locals"] if "functions" in entry)
    functions["get_payment"]["routes"]['"GET /payments"'] = {"api_key_required": True}
    with pytest.raises(openapi.OpenApiError, match="describe the new route's answers"):
        openapi.build(changed)


def test_a_route_no_handler_serves_is_refused(monkeypatch):
    monkeypatch.setattr(openapi, "handler_routes", lambda function: [])
    with pytest.raises(openapi.OpenApiError, match="does not register this route"):
        openapi.build()


def test_a_header_the_handler_reads_but_the_document_omits_is_refused(monkeypatch):
    real = openapi.handler_routes

    def with_extra_header(function):
        return [openapi.HandlerRoute(r.method, r.path, r.takes_idempotency_key, r.body_required,
                                     r.headers_read | {"X-Tenant"}) for r in real(function)]

    monkeypatch.setattr(openapi, "handler_routes", with_extra_header)
    with pytest.raises(openapi.OpenApiError, match="X-Tenant"):
        openapi.build()


# -- a valid OpenAPI 3.1 document -------------------------------------------------------------------


def test_document_is_valid_openapi_3_and_every_operation_loads():
    import schemathesis

    assert DOC["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(copy.deepcopy(DOC))
    schema.validate()  # the OpenAPI 3.1 meta-schema
    loaded = [result.ok().label for result in schema.get_all_operations()]  # raises on an unresolvable $ref
    assert sorted(loaded) == sorted(f"{m} {p}" for m, p in operations())
    for name, component in DOC["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)


def test_the_api_key_scheme_and_the_stage():
    assert DOC["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": DOC["components"]["securitySchemes"]["ApiKey"]["description"]}
    stage = openapi.stage_name()
    assert stage == "v1"
    assert all(server["url"].endswith(f"/{stage}") for server in DOC["servers"])


# -- the routes: handlers, Terraform and the document -------------------------------------------------

# Read independently of the generator: the decorator as written in each handler's source.
ROUTE_DECORATOR = re.compile(r'^@app\.(get|post|put|patch|delete)\("([^"]+)"\)', re.MULTILINE)


def served_routes() -> set[tuple[str, str]]:
    found = set()
    for handler in LAMBDAS.glob("*/handler.py"):
        for method, path in ROUTE_DECORATOR.findall(handler.read_text()):
            found.add((method.upper(), re.sub(r"<(\w+)>", r"{\1}", path)))
    return found


def test_every_route_the_handlers_serve_is_documented_and_nothing_else():
    served = served_routes()
    assert served == {("POST", "/payments"), ("GET", "/payments/{transaction_id}"),
                      ("POST", "/payments/{transaction_id}/refunds"), ("POST", "/webhooks/stripe")}
    assert set(operations()) == served


def test_every_route_terraform_deploys_is_documented_with_its_function_and_api_key():
    routes = openapi.terraform_routes()
    assert {(r.method, r.path) for r in routes} == set(operations())
    for route in routes:
        op = operations()[(route.method, route.path)]
        assert op["operationId"] == route.function
        assert (op["security"] == [{"ApiKey": []}]) is route.api_key_required, route.key
        # What API Gateway answers by itself on this route is documented too.
        if route.api_key_required:
            assert "403" in op["responses"], route.key
        if route.request_schema_file:
            assert "400" in op["responses"], route.key
    assert {r.key for r in routes if not r.api_key_required} == {"POST /webhooks/stripe"}


def test_idempotent_routes_document_the_key_and_the_replay():
    for (method, path), op in operations().items():
        handler = next(h for r in openapi.terraform_routes() if (r.method, r.path) == (method, path)
                       for h in openapi.handler_routes(r.function) if (h.method, h.path) == (method, path))
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
        if handler.takes_idempotency_key:
            assert params["Idempotency-Key"]["required"] is True
            assert params["Idempotency-Key"]["schema"]["maxLength"] == 255
            assert op["responses"]["200"]["headers"]["Idempotent-Replayed"]["schema"] == {"type": "string", "const": "true"}
            assert {"409", "422"} <= set(op["responses"])
        else:
            assert "Idempotency-Key" not in params


# -- request bodies: the same models API Gateway validates with ---------------------------------------


def _gateway_shape(component: str) -> dict:
    """The document's request schema reduced to API Gateway's draft-04 model, as localdev.api_schemas does."""
    text = json.dumps(DOC["components"]["schemas"]).replace("#/components/schemas/", "#/$defs/")
    defs = json.loads(text)
    body = api_schemas._shape(defs[component], defs, component, describe=True)
    return {"$schema": api_schemas.DRAFT_04, "title": component, **body}


def test_request_bodies_have_the_shape_of_the_api_gateway_models():
    checked = 0
    for route in openapi.terraform_routes():
        body = operations()[(route.method, route.path)].get("requestBody")
        if route.request_schema_file is None:
            continue
        ref = body["content"]["application/json"]["schema"]["$ref"]
        component = ref.rsplit("/", 1)[-1]
        committed = json.loads((api_schemas.SCHEMAS_DIR / route.request_schema_file).read_text())
        assert _gateway_shape(component) == committed, route.key
        checked += 1
    assert checked == 2  # POST /payments and the refunds


def test_request_bodies_are_the_functions_models_with_their_limits():
    schemas = DOC["components"]["schemas"]
    assert schemas["PaymentRequest"] == json.loads(json.dumps(
        PaymentRequest.model_json_schema(ref_template="#/components/schemas/{model}")))
    assert schemas["RefundRequest"] == json.loads(json.dumps(
        RefundRequest.model_json_schema(ref_template="#/components/schemas/{model}")))
    payment = operations()[("POST", "/payments")]["requestBody"]
    refund = operations()[("POST", "/payments/{transaction_id}/refunds")]["requestBody"]
    assert payment["required"] is True
    assert refund["required"] is False  # no body is a full refund
    # The examples are real requests: the model takes them.
    PaymentRequest.model_validate(payment["content"]["application/json"]["example"])
    RefundRequest.model_validate(refund["content"]["application/json"]["example"])


# -- response bodies: what the code answers ----------------------------------------------------------


def _projection(*steps: tuple[str, dict]):
    request = PaymentRequest(amount=4200, currency="usd", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1")
    events = [created_event("tx-1", request)]
    projection = apply(None, events[0])
    for event_type, detail in steps:
        events.append(next_event(projection, event_type, detail))
        projection = apply(projection, events[-1])
    return projection, events


def test_payment_answers_match_the_document():
    for steps, secret in [
        ((), None),
        ((("payment.queued", {"reason": "provider down"}),), None),
        ((("payment.processing", {"payment_intent_id": "pi_1"}),), "pi_1_secret_x"),
        ((("payment.failed", {"payment_intent_id": "pi_1", "failure_code": "card_declined",
                              "failure_message": "declined", "retryable": False}),), "pi_1_secret_x"),
    ]:
        projection, _ = _projection(*steps)
        body = payments._response(projection, secret)
        for status in (200, 201, 202):
            assert_documented("POST", "/payments", status, body)


def test_get_payment_answers_match_the_document():
    for steps in [
        (),
        (("payment.processing", {"payment_intent_id": "pi_1"}), ("payment.succeeded", {}),
         ("fraud.scored", {"risk_score": 73, "risk_factors": ["velocity"]}),
         ("payment.refunded", {"amount_refunded": 1000, "refund_id": "re_1", "refund_amount": 1000})),
        (("payment.failed", {"failure_code": "card_declined", "failure_message": "declined", "retryable": False}),),
    ]:
        projection, events = _projection(*steps)
        body = projection.to_api(events)
        assert len(body["events"]) == len(events)
        assert_documented("GET", "/payments/{transaction_id}", 200, body)


def test_refund_answers_match_the_document():
    projection, _ = _projection(("payment.processing", {"payment_intent_id": "pi_1"}), ("payment.succeeded", {}))
    detail = {"refund_id": "re_1", "refund_amount": 1000, "refund_status": "succeeded", "amount_refunded": 1000}
    body = refunds._response(projection, detail)
    for status in (200, 201):
        assert_documented("POST", "/payments/{transaction_id}/refunds", status, body)


def _raised(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def _refused_by_idempotency(exc: Exception) -> ApiError:
    def run():
        with idempotency_refusals():
            raise exc
    return _raised(run)


def test_every_refusal_of_the_api_helpers_matches_the_document():
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    json_headers = {"Content-Type": "application/json"}
    refusals = [
        _raised(lambda: idempotency_key({})),
        _raised(lambda: idempotency_key({"Idempotency-Key": "k" * 256})),
        _raised(lambda: parse_json_body(PaymentRequest, "", json_headers)),
        _raised(lambda: parse_json_body(PaymentRequest, "{}", {"Content-Type": "text/plain"})),
        _raised(lambda: parse_json_body(PaymentRequest, "{not json", json_headers)),
        _raised(lambda: parse_json_body(PaymentRequest, json.dumps({"amount": 0, "currency": "zzz", "x": 1}), json_headers)),
        _raised(lambda: parse_json_body(PaymentRequest, "[]", json_headers)),
        _raised(lambda: parse_json_body(PaymentRequest, " " * (64 * 1024 + 1), json_headers)),
        _refused_by_idempotency(IdempotencyAlreadyInProgressError()),
        _refused_by_idempotency(IdempotencyValidationError()),
        invalid("Idempotency-Key", "header is required"),
    ]
    assert {r.status_code for r in refusals} == {400, 409, 413, 422}
    for path in ("/payments", "/payments/{transaction_id}/refunds"):
        for refusal in refusals:
            assert_documented("POST", path, refusal.status_code, refusal.body())


class _Store:
    def __init__(self, projection=None):
        self.projection = projection

    def load(self, transaction_id):
        from paystream.store import PaymentNotFound

        if self.projection is None:
            raise PaymentNotFound(transaction_id)
        return self.projection, []


class _Breaker:
    def __init__(self, open_: bool = False):
        self.open = open_

    def allow(self):
        return None if self.open else object()

    def record_failure(self, permit):
        pass

    def record_success(self, permit):
        pass


class _Gateway:
    def __init__(self, error):
        self.error = error

    def create_refund(self, *args, **kwargs):
        raise self.error

    def retrieve_charge(self, charge_id):
        raise AssertionError("not reached")


def test_every_refusal_of_the_refund_service_matches_the_document():
    from paystream.adapters.stripe_gateway import PaymentProviderError

    succeeded, _ = _projection(("payment.processing", {"payment_intent_id": "pi_1"}), ("payment.succeeded", {}))
    created, _ = _projection()
    cases = [
        (_Store(None), _Breaker(), None, None),  # 404
        (_Store(created), _Breaker(), None, None),  # 409 not refundable
        (_Store(succeeded), _Breaker(), None, 999_999),  # 422 more than is left
        (_Store(succeeded), _Breaker(open_=True), None, None),  # 503 breaker open
        (_Store(succeeded), _Breaker(), PaymentProviderError("invalid_request", retryable=False, message="no"), None),
        (_Store(succeeded), _Breaker(), PaymentProviderError("unavailable", retryable=True, unavailable=True,
                                                             message="down"), None),
    ]
    seen = set()
    for store, breaker, error, amount in cases:
        service = refunds.RefundService(store, _Gateway(error), breaker, retry_after_seconds=30)
        with pytest.raises(refunds.RefundRefused) as refused:
            service.refund("tx-1", RefundRequest(amount=amount), "request-key")
        answer = refused.value.error
        seen.add(answer.status_code)
        assert_documented("POST", "/payments/{transaction_id}/refunds", answer.status_code, answer.body())
        documented_headers = operations()[("POST", "/payments/{transaction_id}/refunds")]["responses"][
            str(answer.status_code)].get("headers", {})
        assert set(answer.headers) == set(documented_headers), answer
    assert seen == {404, 409, 422, 502, 503}


def test_api_gateway_answers_match_the_document():
    templates = openapi.gateway_response_templates()
    api = RestApiSpec(api_id="a1", name="paystream", routes=(), stages={"v1": {}},
                      gateway_responses={kind: {"responseTemplates": t} for kind, t in templates.items()})
    context = {"requestId": "r1"}
    status, body, _ = gateway_response(api, "BAD_REQUEST_BODY", 400, "Invalid request body", context)
    for path in ("/payments", "/payments/{transaction_id}/refunds"):
        assert_documented("POST", path, status, json.loads(body))
    for kind, status, message in [("INVALID_API_KEY", 403, "Forbidden"), ("THROTTLED", 429, "Too Many Requests")]:
        answer_status, body, _ = gateway_response(api, kind, status, message, context)
        for method, path in operations():
            if method == "GET" or path == "/payments" or "refunds" in path:
                assert_documented(method, path, answer_status, json.loads(body))


# -- the webhook function's answers (in-process, moto) --------------------------------------------------

SECRET = "whsec_test_openapi"


@pytest.fixture()
def aws(monkeypatch):
    """In-process moto with the transactions table, the webhook signing secret and the functions' settings."""
    with mock_aws():
        create_transactions_table(boto3.client("dynamodb", region_name="us-east-1"))
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="webhook-secrets", SecretString=json.dumps({"signing_secrets": [SECRET]}))
        for key, value in {"TRANSACTIONS_TABLE": "transactions", "WEBHOOK_SECRETS_SECRET_ID": "webhook-secrets",
                           "IDEMPOTENCY_TABLE": "idempotency", "STRIPE_API_KEY_SECRET_ID": "stripe-key",
                           "PARKED_QUEUE_URL": "http://sqs/parked", "POWERTOOLS_SERVICE_NAME": "openapi"}.items():
            monkeypatch.setenv(key, value)
        yield


@pytest.fixture()
def webhook(aws):
    return load_handler("stripe_webhook", "stripe_webhook_openapi_under_test")


def _deliver(module, body: str, headers: dict) -> tuple[int, dict]:
    event = {"resource": "/webhooks/stripe", "path": "/webhooks/stripe", "httpMethod": "POST", "headers": headers,
             "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
             "requestContext": {"resourcePath": "/webhooks/stripe", "httpMethod": "POST", "stage": "v1",
                                "requestId": "r1", "identity": {"sourceIp": "127.0.0.1"}},
             "body": body, "isBase64Encoded": False}
    response = module.handler(event, LambdaContext("stripe_webhook"))
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"])


def test_webhook_answers_match_the_document(webhook):
    body = json.dumps({"id": "evt_openapi_1", "type": "payment_intent.succeeded", "object": "event",
                       "data": {"object": {"id": "pi_1"}}})
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body}", SECRET)
    signed = {"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={signature}"}
    answers = [_deliver(webhook, body, signed), _deliver(webhook, body, signed),
               _deliver(webhook, body, {"Content-Type": "application/json"}),
               _deliver(webhook, body, {**signed, "Stripe-Signature": "t=1,v1=00"}),
               _deliver(webhook, "[]", signed)]
    assert [status for status, _ in answers] == [200, 200, 400, 400, 400]
    assert answers[1][1]["duplicate"] is True
    for status, answer in answers:
        assert_documented("POST", "/webhooks/stripe", status, answer)


# -- ids outside Powertools' route pattern (found by the fuzzing run) -------------------------------------


@pytest.fixture()
def payment_routes(aws):
    return {"GET /payments/{transaction_id}": load_handler("get_payment", "get_payment_openapi_under_test"),
            "POST /payments/{transaction_id}/refunds": load_handler("refund_payment", "refund_openapi_under_test"),
            "POST /payments": load_handler("initiate_payment", "initiate_openapi_under_test")}


def _api_event(route: str, transaction_id: str, body: str | None, headers: dict, base64_encoded: bool = False) -> dict:
    method, path = route.split(" ")
    return {"resource": path, "path": path.replace("{transaction_id}", transaction_id), "httpMethod": method,
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": {"transaction_id": transaction_id} if "{" in path else None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": method, "stage": "v1", "requestId": "r1",
                               "identity": {"sourceIp": "127.0.0.1", "apiKeyId": "key-1"}},
            "body": body, "isBase64Encoded": base64_encoded}


@pytest.mark.parametrize("transaction_id", ["a©b", "x\x13y", "id`1", 'q"r'])
def test_an_id_outside_the_resolvers_route_pattern_answers_the_documented_404(payment_routes, transaction_id):
    # API Gateway hands the function any single path segment; Powertools' route pattern takes only URI-safe
    # characters and word characters, and answered its own {"statusCode", "message"} 404 for the rest.
    for route, module in payment_routes.items():
        if "{transaction_id}" not in route:
            continue
        method, path = route.split(" ")
        headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1"}
        event = _api_event(route, transaction_id, "{}" if method == "POST" else None, headers)
        response = module.handler(event, LambdaContext(module.__name__))
        assert response["statusCode"] == 404, route
        assert_documented(method, path, 404, json.loads(response["body"]))


NOT_UTF8 = base64.b64encode(b'{"amount": "\xff\xfe"}').decode()


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_body_that_is_not_utf8_is_a_documented_400_not_a_crash(payment_routes, webhook, content_type):
    # A body that is not UTF-8 reaches the function base64-encoded (isBase64Encoded); Powertools' decoded_body
    # raised UnicodeDecodeError on it and API Gateway answered 502.
    routes = {route: module for route, module in payment_routes.items() if route.startswith("POST")}
    routes["POST /webhooks/stripe"] = webhook
    for route, module in routes.items():
        method, path = route.split(" ")
        headers = {"Content-Type": content_type, "Idempotency-Key": "k-1", "Stripe-Signature": "t=1,v1=00"}
        response = module.handler(_api_event(route, "tx-1", NOT_UTF8, headers, base64_encoded=True),
                                  LambdaContext(module.__name__))
        assert response["statusCode"] == 400, (route, response)
        body = json.loads(response["body"])
        assert_documented(method, path, 400, body)
        assert "UTF-8" in json.dumps(body), body


# -- the local API Gateway: methods API Gateway does not have (found by the fuzzing run) -------------------


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "CONNECT"])
def test_a_method_api_gateway_does_not_have_is_a_documented_403_not_a_501(method):
    import http.client

    from localdev.dataplane.apigw import ApiGatewayServer, RouteTable
    from localdev.dataplane.discovery import Discovery, Route

    invoked = []
    routes = tuple(Route("a1", "r1", "/payments", verb, False, "arn:aws:lambda:us-east-1:0:function:f")
                   for verb in ("POST", "ANY"))
    server = ApiGatewayServer(("127.0.0.1", 0), lambda arn, payload: invoked.append(arn))
    server.set_routes(RouteTable(Discovery(apis=[RestApiSpec("a1", "paystream", {"v1": {}}, routes)])))
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request(method, "/v1/payments", body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        status, body = response.status, json.loads(response.read())
        conn.close()
    finally:
        server.stop()
    # http.server answered its own 501 HTML page; API Gateway answers an unknown method like an unknown route.
    assert status == 403 and invoked == []  # `ANY` covers API Gateway's methods only
    assert_documented("POST", "/payments", status, body)
