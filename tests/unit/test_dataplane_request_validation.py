"""The local REST API server validates requests as API Gateway does, from what the control plane holds.

A REST API is built in in-process moto the way Terraform builds it (models, request validators on
methods, gateway responses), discovered, and served by the data plane's API server with a stand-in
for the function. The function must not run when the validator turns a request away; everything the
model lets through reaches it unchanged.
"""

from __future__ import annotations

import http.client
import json

import boto3
import pytest
from moto import mock_aws

from localdev.api_schemas import SCHEMAS_DIR
from localdev.dataplane.apigw import ApiGatewayServer, RouteTable, gateway_response, refusal
from localdev.dataplane.discovery import Discovery, RequestValidation, discover_apis
from localdev.dataplane.types import InvokeResult

REGION = "us-east-1"
PAYMENT = {"amount": 4200, "currency": "usd", "customer_id": "cus_1", "payment_method_id": "pm_1", "order_id": "o-1"}
CONTRACT_400 = ('{"error":"validation_error","message":$context.error.messageString,'
                '"details":[{"field":"body","message":"does not match the request schema"}]}')


class Function:
    """Stands in for the Lambda functions: records each event and answers 200 with it."""

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, function_arn: str, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        self.events.append(event)
        return InvokeResult(True, json.dumps({"statusCode": 200, "body": json.dumps({"seen": event["body"]})}).encode())


@pytest.fixture()
def control_plane():
    with mock_aws():
        gw = boto3.client("apigateway", region_name=REGION)
        api_id = gw.create_rest_api(name="paystream")["id"]
        root = next(r["id"] for r in gw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
        uri = ("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
               "arn:aws:lambda:us-east-1:000000000000:function:fn/invocations")
        both = gw.create_request_validator(restApiId=api_id, name="body-and-parameters",
                                           validateRequestBody=True, validateRequestParameters=True)["id"]
        params = gw.create_request_validator(restApiId=api_id, name="parameters",
                                             validateRequestBody=False, validateRequestParameters=True)["id"]
        for name, file in (("PostPaymentsRequest", "payment-request.json"), ("RefundRequest", "refund-request.json")):
            gw.create_model(restApiId=api_id, name=name, contentType="application/json",
                            schema=(SCHEMAS_DIR / file).read_text())

        def method(parent: str, part: str, key_required: bool, **kwargs) -> str:
            resource = gw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
            gw.put_method(restApiId=api_id, resourceId=resource, httpMethod="POST", authorizationType="NONE",
                          apiKeyRequired=key_required, **kwargs)
            gw.put_integration(restApiId=api_id, resourceId=resource, httpMethod="POST", type="AWS_PROXY",
                               integrationHttpMethod="POST", uri=uri)
            return resource

        payments = method(root, "payments", True, requestValidatorId=both,
                          requestModels={"application/json": "PostPaymentsRequest"})
        method(gw.create_resource(restApiId=api_id, parentId=payments, pathPart="{transaction_id}")["id"], "refunds",
               True, requestValidatorId=both, requestModels={"application/json": "RefundRequest"})
        webhooks = gw.create_resource(restApiId=api_id, parentId=root, pathPart="webhooks")["id"]
        method(webhooks, "stripe", False, requestValidatorId=params)
        method(root, "signed", False, requestValidatorId=params,
               requestParameters={"method.request.header.X-Signature": True, "method.request.querystring.v": True,
                                  "method.request.header.X-Optional": False})
        gw.create_deployment(restApiId=api_id, stageName="v1")
        key = gw.create_api_key(name="default", enabled=True, value="k" * 30)
        plan = gw.create_usage_plan(name="default", apiStages=[{"apiId": api_id, "stage": "v1"}])
        gw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
        yield gw, api_id


@pytest.fixture()
def serve(control_plane):
    """serve() -> (call, function): the API as discovered now, served on a free port."""
    servers = []

    def start():
        apis, keys = discover_apis(lambda service: boto3.client(service, region_name=REGION))
        function = Function()
        server = ApiGatewayServer(("127.0.0.1", 0), function)
        server.set_routes(RouteTable(Discovery(apis=apis, api_keys=keys)))
        server.start()
        servers.append(server)

        def call(path: str, body: bytes | dict | list | None = None, headers: dict | None = None, key: bool = True):
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or b"")
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
            try:
                conn.request("POST", f"/v1{path}", body=data,
                             headers={"Content-Type": "application/json", **({"x-api-key": "k" * 30} if key else {}),
                                      **(headers or {})})
                resp = conn.getresponse()
                return resp.status, dict(resp.getheaders()), json.loads(resp.read() or b"null")
            finally:
                conn.close()

        return call, function

    yield start
    for server in servers:
        server.stop()


def test_discovery_reads_validators_and_models(control_plane):
    apis, _ = discover_apis(lambda service: boto3.client(service, region_name=REGION))
    routes = {(r.method, r.resource_path): r for r in apis[0].routes}
    payments = routes[("POST", "/payments")].validation
    assert payments.validate_body and payments.validate_parameters
    assert json.loads(payments.models["application/json"])["title"] == "PaymentRequest"
    webhook = routes[("POST", "/webhooks/stripe")].validation
    assert not webhook.validate_body and webhook.models == {}
    assert routes[("POST", "/signed")].validation.required_parameters == (
        "method.request.header.X-Signature", "method.request.querystring.v")


def test_a_valid_payment_reaches_the_function_unchanged(serve):
    call, function = serve()
    body = json.dumps({**PAYMENT, "metadata": {"ref": "a"}, "country": "de"}).encode()
    status, _, answer = call("/payments", body)
    assert status == 200 and answer == {"seen": body.decode()}
    assert len(function.events) == 1


@pytest.mark.parametrize("body", [
    {k: v for k, v in PAYMENT.items() if k != "amount"},
    {**PAYMENT, "amount": "42.00"},
    {**PAYMENT, "card_number": "4242424242424242"},
    [PAYMENT],
    b"{not json",
    b"",
])
def test_a_body_its_model_rejects_is_answered_400_without_calling_the_function(serve, body):
    call, function = serve()
    status, headers, answer = call("/payments", body)
    assert status == 400 and answer == {"message": "Invalid request body"}
    assert headers["x-amzn-ErrorType"] == "BadRequestException"
    assert function.events == []


def test_value_errors_are_left_to_the_function(serve):
    # The function answers these field by field (e2e: amount and currency in details).
    call, function = serve()
    status, _, _ = call("/payments", {**PAYMENT, "amount": 0, "currency": "zzz"})
    assert status == 200 and len(function.events) == 1


def test_the_api_key_is_checked_before_the_body(serve):
    call, function = serve()
    status, _, answer = call("/payments", {"junk": True}, key=False)
    assert status == 403 and answer == {"message": "Forbidden"} and function.events == []


def test_an_empty_refund_body_is_a_valid_full_refund(serve):
    call, function = serve()
    assert call("/payments/tx_1/refunds", b"")[0] == 200
    assert call("/payments/tx_1/refunds", {"amount": 500})[0] == 200
    assert call("/payments/tx_1/refunds", {"amount": "500"})[0] == 400
    assert len(function.events) == 2


def test_a_content_type_without_a_model_is_not_validated(serve):
    # API Gateway: no model for the content type, no body validation; the function refuses the type itself.
    call, function = serve()
    status, _, _ = call("/payments", b"amount=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and function.events[0]["body"] == "amount=1"
    # Without a Content-Type the body counts as application/json.
    assert refusal(RequestValidation(True, False, {"application/json": '{"type": "object"}'}),
                   {}, {}, {}, b"[]").response_type == "BAD_REQUEST_BODY"


def test_routes_with_a_parameters_validator_only_pass_any_body(serve):
    call, function = serve()
    status, _, _ = call("/webhooks/stripe", b"not json at all", key=False)
    assert status == 200 and function.events[0]["body"] == "not json at all"


def test_required_parameters_missing_or_blank_are_400(serve):
    call, function = serve()
    status, _, answer = call("/signed", b"{}", {"X-Signature": "  "}, key=False)
    assert status == 400 and answer == {"message": "Missing required request parameters: [X-Signature, v]"}
    assert call("/signed?v=1", b"{}", {"x-signature": "s"}, key=False)[0] == 200
    assert len(function.events) == 1


def test_a_configured_gateway_response_shapes_the_400(control_plane, serve):
    gw, api_id = control_plane
    gw.put_gateway_response(restApiId=api_id, responseType="BAD_REQUEST_BODY",
                            responseTemplates={"application/json": CONTRACT_400},
                            responseParameters={"gatewayresponse.header.Cache-Control": "'no-store'"})
    call, _ = serve()
    status, headers, answer = call("/payments", {"amount": "42"})
    assert status == 400 and headers["Cache-Control"] == "no-store"
    assert answer == {"error": "validation_error", "message": "Invalid request body",
                      "details": [{"field": "body", "message": "does not match the request schema"}]}
    # Other errors keep their defaults.
    assert call("/payments", PAYMENT, key=False)[2] == {"message": "Forbidden"}


def test_default_4xx_applies_to_types_without_their_own_response(control_plane, serve):
    gw, api_id = control_plane
    gw.put_gateway_response(restApiId=api_id, responseType="DEFAULT_4XX",
                            responseTemplates={"application/json": '{"error":$context.error.messageString,'
                                               '"type":"$context.error.responseType","id":"$context.requestId"}'})
    call, _ = serve()
    status, headers, answer = call("/payments", PAYMENT, key=False)
    assert status == 403 and answer["error"] == "Forbidden" and answer["type"] == "INVALID_API_KEY"
    assert answer["id"] == headers["x-amzn-RequestId"]
    status, _, answer = call("/nowhere", PAYMENT)
    assert status == 403 and answer["type"] == "MISSING_AUTHENTICATION_TOKEN"


def test_gateway_response_template_substitution():
    status, body, headers = gateway_response(
        None, "BAD_REQUEST_BODY", 400, 'say "hi"', {"requestId": "r1"})
    assert (status, json.loads(body), headers) == (400, {"message": 'say "hi"'}, [("Content-Type", "application/json")])
