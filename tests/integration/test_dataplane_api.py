"""The data plane's REST API server behaves as API Gateway with Lambda proxy integrations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import uuid
from dataclasses import dataclass

import pytest

from conftest import function_sources

pytestmark = pytest.mark.integration

SECRET = "whsec_test_secret"


@dataclass
class Api:
    api_id: str
    port: int
    prefix: str  # /restapis/<id>/v1/_user_request_
    key: str
    disabled_key: str
    unplanned_key: str


def request(api: Api, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        conn.request(method, api.prefix + path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.fixture()
def api(aws, deploy_function, dataplane) -> Api:
    """A REST API like the platform's: /payments (key required), /payments/{id}, /webhooks/{proxy+}, /misc/{action}."""
    suffix = uuid.uuid4().hex[:8]
    function_arn = deploy_function(f"api-echo-{suffix}", function_sources("api_echo"), env={"SIGNING_SECRET": SECRET},
                                   timeout=1)
    gw = aws("apigateway")
    api_id = gw.create_rest_api(name=f"api-{suffix}")["id"]
    root = next(r["id"] for r in gw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"

    def resource(parent: str, part: str) -> str:
        return gw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]

    def method(resource_id: str, verb: str, key_required: bool) -> None:
        gw.put_method(restApiId=api_id, resourceId=resource_id, httpMethod=verb, authorizationType="NONE",
                      apiKeyRequired=key_required)
        gw.put_integration(restApiId=api_id, resourceId=resource_id, httpMethod=verb, type="AWS_PROXY",
                           integrationHttpMethod="POST", uri=uri)

    payments = resource(root, "payments")
    method(payments, "POST", True)
    method(resource(payments, "{transaction_id}"), "GET", True)
    webhooks = resource(root, "webhooks")
    method(resource(webhooks, "{proxy+}"), "ANY", False)
    method(resource(resource(root, "misc"), "{action}"), "POST", False)
    gw.create_deployment(restApiId=api_id, stageName="v1")

    def key(enabled: bool, in_plan: bool) -> str:
        created = gw.create_api_key(name=f"key-{uuid.uuid4().hex[:6]}", enabled=enabled)
        if in_plan:
            plan = gw.create_usage_plan(name=f"plan-{uuid.uuid4().hex[:6]}", apiStages=[{"apiId": api_id, "stage": "v1"}])
            gw.create_usage_plan_key(usagePlanId=plan["id"], keyId=created["id"], keyType="API_KEY")
        return created["value"]

    result = Api(api_id, int(dataplane.api_url_base.rsplit(":", 1)[1]), f"/restapis/{api_id}/v1/_user_request_",
                 key(True, True), key(False, True), key(True, False))
    dataplane.reload()
    return result


def get_json(api: Api, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    status, resp_headers, raw = request(api, method, path, body, headers)
    return status, resp_headers, json.loads(raw)


def test_path_parameters_and_proxy_event(api):
    status, headers, event = get_json(api, "GET", "/payments/tx_123?expand=events&tag=a&tag=b",
                                      headers={"x-api-key": api.key, "X-Trace": "t1"})
    assert status == 200 and headers["X-Echo"] == "yes"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert event["resource"] == "/payments/{transaction_id}"
    assert event["path"] == "/payments/tx_123" and event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"transaction_id": "tx_123"}
    assert event["queryStringParameters"] == {"expand": "events", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"expand": ["events"], "tag": ["a", "b"]}
    assert event["headers"]["X-Trace"] == "t1" and event["multiValueHeaders"]["X-Trace"] == ["t1"]
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/payments/{transaction_id}" and ctx["stage"] == "v1"
    assert ctx["path"] == "/v1/payments/tx_123" and ctx["httpMethod"] == "GET"
    assert ctx["identity"]["apiKey"] == api.key and ctx["identity"]["apiKeyId"]
    assert ctx["identity"]["sourceIp"] == "127.0.0.1" and isinstance(ctx["requestTimeEpoch"], int)
    assert event["body"] is None and event["isBase64Encoded"] is False


def test_greedy_proxy_path_with_any_method(api):
    status, _, event = get_json(api, "DELETE", "/webhooks/stripe/events/1")
    assert status == 200 and event["pathParameters"] == {"proxy": "stripe/events/1"}
    assert event["resource"] == "/webhooks/{proxy+}" and event["httpMethod"] == "DELETE"


@pytest.mark.parametrize("which", ["none", "unknown", "disabled", "not_in_usage_plan"])
def test_api_key_required_rejects_bad_keys_with_403(api, which):
    headers = {
        "none": {},
        "unknown": {"x-api-key": "not-a-key"},
        "disabled": {"x-api-key": api.disabled_key},
        "not_in_usage_plan": {"x-api-key": api.unplanned_key},
    }[which]
    status, _, body = get_json(api, "POST", "/payments", b"{}", headers)
    assert status == 403 and body == {"message": "Forbidden"}


def test_api_key_in_usage_plan_is_accepted(api):
    status, _, event = get_json(api, "POST", "/payments", b'{"amount": 100}', {"x-api-key": api.key})
    assert status == 200 and event["body"] == '{"amount": 100}'


@pytest.mark.parametrize("method,path", [("GET", "/nowhere"), ("GET", "/payments"), ("POST", "/misc")])
def test_unknown_route_is_403_missing_authentication_token(api, method, path):
    status, _, body = get_json(api, method, path)
    assert status == 403 and body == {"message": "Missing Authentication Token"}


def test_body_over_the_limit_is_413(api):
    status, _, _ = request(api, "POST", "/misc/echo", b"x" * (10 * 1024 * 1024 + 1))
    assert status == 413
    status, _, _ = request(api, "POST", "/misc/echo", b"x" * 1024)
    assert status == 200


@pytest.mark.parametrize("action", ["fail", "slow", "invalid"])
def test_function_error_timeout_or_invalid_response_is_502(api, action):
    status, _, body = get_json(api, "POST", f"/misc/{action}")
    assert status == 502 and body == {"message": "Internal server error"}


def test_binary_body_round_trips_base64(api):
    payload = bytes(range(256)) * 4
    status, headers, raw = request(api, "POST", "/misc/binary", payload, {"Content-Type": "application/octet-stream"})
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert raw == payload[::-1]


def test_raw_json_body_is_byte_exact_so_signatures_verify(api):
    body = '{"id":"evt_1",  "amount": 1e2, "name":"Zoë \\u00e9",\n"nested": {"b":1,"a":2}}'.encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    status, _, out = get_json(api, "POST", "/webhooks/stripe/verify", body,
                              {"Content-Type": "application/json", "X-Signature": signature})
    assert status == 200 and out == {"verified": True}
    status, _, out = get_json(api, "POST", "/webhooks/stripe/verify", body + b" ",
                              {"Content-Type": "application/json", "X-Signature": signature})
    assert status == 400 and out == {"verified": False}


def test_binary_event_flag(api):
    status, _, event = get_json(api, "POST", "/webhooks/x", b"\x00\x01\xff", {"Content-Type": "image/png"})
    assert status == 200 and event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01\xff"


def test_stage_url_without_restapis_prefix_when_there_is_exactly_one_api():
    from localdev.dataplane.apigw import RouteTable
    from localdev.dataplane.discovery import Discovery, RestApiSpec, Route

    route = Route("abc123", "r1", "/payments/{transaction_id}", "GET", False, "arn:aws:lambda:us-east-1:0:function:f")
    one = RouteTable(Discovery(apis=[RestApiSpec("abc123", "paystream", {"v1": {}}, (route,))]))
    match = one.match("GET", "/v1/payments/tx_1")
    assert match is not None and match.path_parameters == {"transaction_id": "tx_1"} and match.stage == "v1"
    assert one.match("GET", "/v2/payments/tx_1") is None
    two = RouteTable(Discovery(apis=[RestApiSpec("abc123", "a", {"v1": {}}, (route,)),
                                     RestApiSpec("def456", "b", {"v1": {}}, ())]))
    assert two.match("GET", "/v1/payments/tx_1") is None
    assert two.match("GET", "/restapis/abc123/v1/_user_request_/payments/tx_1") is not None
