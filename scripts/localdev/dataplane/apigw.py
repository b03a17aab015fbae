"""The REST API server: API Gateway (v1, Lambda proxy integrations) for what Terraform deployed.

URLs: `/<stage>/<path>` when the emulator holds exactly one REST API (the stack's `api_url` is
`http://127.0.0.1:<port>/v1`), and always LocalStack's `/restapis/<api_id>/<stage>/_user_request_/<path>`.
Every stage of an API serves the API's current resources (deployment snapshots are not modelled).
Non-proxy integrations are not served: such a method answers 500 and says so in the data plane log.

In API Gateway's order: route, API key, then the method's request validator (required parameters,
then the body against the model for its content type), then the function. API Gateway's own error
answers use the API's gateway responses (simple `$context` substitution), else its defaults.
Not modelled: usage plan throttles and quotas (no 429), access logs, stage caching.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema

from localdev.dataplane.discovery import ApiKeySpec, Discovery, RequestValidation, RestApiSpec, Route
from localdev.dataplane.types import InvokeResult

log = logging.getLogger("localdev.dataplane")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# The methods a REST API resource can have (ANY means these). Any other request method (TRACE, CONNECT,
# QUERY, ...) matches no method, so API Gateway answers it like an unknown route: 403, never a 5xx.
API_GATEWAY_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
ACCOUNT_ID = "000000000000"
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded",
               "application/javascript", "application/graphql")


@dataclass(frozen=True)
class Match:
    api: RestApiSpec
    stage: str
    route: Route
    path: str  # request path below the stage, "/payments/abc"
    path_parameters: dict[str, str]


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _match_resource(resource_path: str, path: str) -> dict[str, str] | None:
    pattern, actual = _segments(resource_path), _segments(path)
    params: dict[str, str] = {}
    for i, part in enumerate(pattern):
        if part.startswith("{") and part.endswith("+}"):
            if i >= len(actual):
                return None
            params[part[1:-2]] = "/".join(actual[i:])
            return params
        if i >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = actual[i]
        elif part != actual[i]:
            return None
    return params if len(pattern) == len(actual) else None


def _specificity(resource_path: str) -> tuple[int, int]:
    """API Gateway prefers literal segments over {param} over {proxy+}."""
    parts = _segments(resource_path)
    greedy = any(p.endswith("+}") for p in parts)
    literal = sum(1 for p in parts if not p.startswith("{"))
    return (0 if greedy else 1, literal)


class RouteTable:
    def __init__(self, discovery: Discovery):
        self.apis = {api.api_id: api for api in discovery.apis}
        self.keys_by_value: dict[str, ApiKeySpec] = {k.value: k for k in discovery.api_keys if k.value}

    def resolve(self, url_path: str) -> tuple[RestApiSpec, str, str] | None:
        """(api, stage, path below the stage) for a request URL path, or None."""
        parts = url_path.split("/")
        # "/restapis/<id>/<stage>/_user_request_/<path>" -> ["", "restapis", id, stage, "_user_request_", ...]
        if len(parts) >= 5 and parts[1] == "restapis" and parts[4] == "_user_request_":
            api = self.apis.get(parts[2])
            if api is None or parts[3] not in api.stages:
                return None
            return api, parts[3], "/" + "/".join(parts[5:])
        if len(self.apis) == 1 and len(parts) >= 2:
            api = next(iter(self.apis.values()))
            if parts[1] in api.stages:
                return api, parts[1], "/" + "/".join(parts[2:])
        return None

    def match(self, method: str, url_path: str) -> Match | None:
        resolved = self.resolve(url_path)
        if resolved is None or method not in API_GATEWAY_METHODS:
            return None
        api, stage, path = resolved
        candidates = []
        for route in api.routes:
            params = _match_resource(route.resource_path, path)
            if params is not None and route.method in (method, "ANY"):
                candidates.append((_specificity(route.resource_path), route.method != "ANY", route, params))
        if not candidates:
            return None
        _, _, route, params = max(candidates, key=lambda c: (c[0], c[1]))
        return Match(api, stage, route, path, {k: unquote(v) for k, v in params.items()})

    def routes(self) -> list[dict]:
        return [
            {"api_id": api.api_id, "stages": sorted(api.stages), "method": r.method, "path": r.resource_path,
             "function_arn": r.function_arn, "api_key_required": r.api_key_required}
            for api in self.apis.values() for r in api.routes
        ]


# -- request validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """API Gateway turning a request away before the integration: a gateway response type and message."""

    response_type: str  # BAD_REQUEST_BODY, BAD_REQUEST_PARAMETERS
    message: str
    validation_errors: str = ""  # $context.error.validationErrorString


@functools.lru_cache(maxsize=128)
def _schema_validator(schema_text: str) -> jsonschema.protocols.Validator | None:
    """A validator for a model's schema (draft-04 unless the schema says otherwise); None if unusable."""
    try:
        schema = json.loads(schema_text)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
        cls.check_schema(schema)
    except (ValueError, jsonschema.SchemaError) as exc:
        log.error("request model schema is not valid JSON Schema; its bodies are not validated: %s", exc)
        return None
    return cls(schema)


def _required_parameter_missing(parameter: str, headers: Mapping[str, str], query: Mapping[str, list[str]],
                                path_parameters: Mapping[str, str]) -> bool:
    """`method.request.<header|querystring|path>.<name>` absent or blank ("included and not blank")."""
    _, _, rest = parameter.partition("method.request.")
    where, _, name = rest.partition(".")
    if where == "header":
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    elif where == "querystring":
        value = (query.get(name) or [None])[-1]
    elif where == "path":
        value = path_parameters.get(name)
    else:
        return False
    return value is None or not value.strip()


def refusal(validation: RequestValidation | None, headers: Mapping[str, str], query: Mapping[str, list[str]],
            path_parameters: Mapping[str, str], body: bytes) -> Refusal | None:
    """What the method's request validator answers instead of calling the integration, or None."""
    if validation is None:
        return None
    if validation.validate_parameters:
        missing = [p.rsplit(".", 1)[-1] for p in validation.required_parameters
                   if _required_parameter_missing(p, headers, query, path_parameters)]
        if missing:
            return Refusal("BAD_REQUEST_PARAMETERS", f"Missing required request parameters: [{', '.join(missing)}]")
    if not validation.validate_body:
        return None
    # No Content-Type counts as application/json; a content type without a model (and no $default
    # model) is not validated (API Gateway: "If no matching content type is found, request
    # validation is not performed").
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None) or "application/json"
    content_type = content_type.split(";")[0].strip().lower()
    schema_text = validation.models.get(content_type) or validation.models.get("$default")
    if schema_text is None or (validator := _schema_validator(schema_text)) is None:
        return None
    try:
        document = json.loads(body or b"{}")  # an empty body is validated as {}
    except (ValueError, RecursionError):
        return Refusal("BAD_REQUEST_BODY", "Invalid request body", "[Invalid JSON]")
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return None
    # Logged by location and rule only: the messages quote the body's values.
    log.info("request body refused by its model: %s",
             ", ".join(f"/{'/'.join(map(str, e.absolute_path))} ({e.validator})" for e in errors))
    return Refusal("BAD_REQUEST_BODY", "Invalid request body", "[" + ", ".join(e.message for e in errors) + "]")


# -- gateway responses ----------------------------------------------------------------------------

_DEFAULT_TEMPLATE = '{"message":$context.error.messageString}'
_TEMPLATE_VARIABLE = re.compile(r"\$(context|stageVariables)((?:\.[A-Za-z0-9_]+)+)")


def gateway_response(api: RestApiSpec | None, response_type: str, status: int, message: str,
                     context: Mapping[str, str], stage_variables: Mapping[str, str] | None = None,
                     request_headers: Mapping[str, str] | None = None) -> tuple[int, bytes, list[tuple[str, str]]]:
    """(status, body, headers) of API Gateway's own answer: the API's gateway response for the type,
    else its DEFAULT_4XX/DEFAULT_5XX, else API Gateway's default body {"message": ...}."""
    configured = (api.gateway_responses if api else {})
    response = configured.get(response_type) or configured.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX") or {}
    templates = response.get("responseTemplates") or {"application/json": _DEFAULT_TEMPLATE}
    content_type = "application/json" if "application/json" in templates else next(iter(templates))
    values = {
        "context.error.message": message,
        "context.error.messageString": json.dumps(message),
        "context.error.responseType": response_type,
        **{f"context.{k}": v for k, v in context.items()},
        **{f"stageVariables.{k}": v for k, v in (stage_variables or {}).items()},
    }
    body = _TEMPLATE_VARIABLE.sub(lambda m: values.get(m.group(1) + m.group(2), ""), templates[content_type] or "")
    headers = [("Content-Type", content_type)]
    lowered = {k.lower(): v for k, v in (request_headers or {}).items()}
    for target, source in (response.get("responseParameters") or {}).items():
        if not target.startswith("gatewayresponse.header."):
            continue
        if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
            value: str | None = source[1:-1]
        elif source.startswith("method.request.header."):
            value = lowered.get(source.removeprefix("method.request.header.").lower())
        else:
            value = None
        if value is not None:
            headers.append((target.removeprefix("gatewayresponse.header."), value))
    return int(response.get("statusCode") or status), body.encode("utf-8"), headers


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return True
    ctype = content_type.split(";")[0].strip().lower()
    return ctype.startswith(_TEXT_TYPES) or ctype.endswith("+json") or ctype.endswith("+xml")


class ApiGatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets bursts of concurrent clients (a load test's 50).
    request_queue_size = 256
    block_on_close = False

    def __init__(self, address: tuple[str, int], invoke: Callable[[str, bytes], InvokeResult],
                 max_body_bytes: int = MAX_BODY_BYTES):
        super().__init__(address, _Handler)
        self.invoke = invoke
        self.max_body_bytes = max_body_bytes
        self.table = RouteTable(Discovery())
        self._thread = threading.Thread(target=self.serve_forever, name="apigw", daemon=True)

    def handle_error(self, request, client_address) -> None:
        # A peer going away (a killed worker, a client that hung up) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def set_routes(self, table: RouteTable) -> None:
        self.table = table  # one reference swap: requests in flight keep the table they started with

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiGatewayServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002
        log.debug("apigw %s", format % args)

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]], request_id: str) -> None:
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []

    def _error(self, status: int, message: str, error_type: str, request_id: str) -> None:
        body = json.dumps({"message": message}).encode()
        self._send(status, body, [("x-amzn-ErrorType", error_type)], request_id)

    def _gateway_error(self, api: RestApiSpec | None, stage: str | None, response_type: str, status: int,
                       message: str, error_type: str, request_id: str, **context: str) -> None:
        status, body, headers = gateway_response(
            api, response_type, status, message,
            {"requestId": request_id, "extendedRequestId": request_id, "httpMethod": self.command,
             "stage": stage or "", "apiId": api.api_id if api else "", **context},
            api.stages.get(stage or "") if api else None, dict(self.headers.items()),
        )
        self._send(status, body, [*headers, ("x-amzn-ErrorType", error_type)], request_id)

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        started = time.time()
        body = self._read_body()
        if body is None:
            self.close_connection = True  # the unread rest of the body must not be parsed as the next request
            return self._error(413, "Request Too Long", "RequestEntityTooLargeException", request_id)
        split = urlsplit(self.path)
        table = self.server.table
        match = table.match(self.command, unquote(split.path))
        if match is None:
            resolved = table.resolve(unquote(split.path))
            return self._gateway_error(resolved[0] if resolved else None, resolved[1] if resolved else None,
                                       "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token",
                                       "MissingAuthenticationTokenException", request_id)
        api_key = self.headers.get("x-api-key")
        key = table.keys_by_value.get(api_key) if api_key else None
        if match.route.api_key_required and not (
            key and key.enabled and (match.api.api_id, match.stage) in key.stages
        ):
            return self._gateway_error(match.api, match.stage, "INVALID_API_KEY", 403, "Forbidden",
                                       "ForbiddenException", request_id, resourcePath=match.route.resource_path)
        query = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        refused = refusal(match.route.validation, self.headers, query, match.path_parameters, body)
        if refused is not None:
            return self._gateway_error(match.api, match.stage, refused.response_type, 400, refused.message,
                                       "BadRequestException", request_id, resourcePath=match.route.resource_path,
                                       **{"error.validationErrorString": refused.validation_errors})
        if match.route.function_arn is None:
            log.error("%s %s: integration is not AWS_PROXY to a Lambda function; not served locally",
                      match.route.method, match.route.resource_path)
            return self._error(500, "Internal server error", "InternalServerErrorException", request_id)
        event = self._event(match, split.query, body, request_id, started, key)
        result = self.server.invoke(match.route.function_arn, json.dumps(event).encode())
        response = _proxy_response(result)
        if response is None:
            return self._error(502, "Internal server error", "InternalServerErrorException", request_id)
        self._send(*response, request_id)

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the limit (read no further than the limit)."""
        limit = self.server.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, size = [], 0
            while (chunk_size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                size += chunk_size
                if size > limit:
                    return None
                chunks.append(self.rfile.read(chunk_size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            # Read (and drop) what the client is sending, so it gets the 413 instead of a broken pipe.
            while length > 0 and (chunk := self.rfile.read(min(length, 1 << 20))):
                length -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _event(self, match: Match, query: str, body: bytes, request_id: str, started: float,
               key: ApiKeySpec | None) -> dict:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            existing = next((n for n in multi_headers if n.lower() == name.lower()), name)
            multi_headers.setdefault(existing, []).append(value)
            headers[existing] = value
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        text = _is_text(self.headers.get("Content-Type"))
        if text:
            try:
                body_out: str | None = body.decode("utf-8")
            except UnicodeDecodeError:
                text = False
        if not text:
            body_out = base64.b64encode(body).decode()
        identity = {
            "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
            "sourceIp": self.client_address[0], "principalOrgId": None, "accessKey": None,
            "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
            "userAgent": self.headers.get("User-Agent"), "user": None,
        }
        if key is not None:
            identity.update(apiKey=key.value, apiKeyId=key.id)
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_address[1]}")
        return {
            "resource": match.route.resource_path,
            "path": match.path,
            "httpMethod": self.command,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": match.path_parameters or None,
            "stageVariables": match.api.stages.get(match.stage) or None,
            "requestContext": {
                "resourceId": match.route.resource_id,
                "resourcePath": match.route.resource_path,
                "httpMethod": self.command,
                "extendedRequestId": request_id,
                "requestTime": datetime.fromtimestamp(started, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{match.stage}{match.path}",
                "accountId": ACCOUNT_ID,
                "protocol": self.request_version,
                "stage": match.stage,
                "domainPrefix": host.split(".")[0].split(":")[0],
                "requestTimeEpoch": int(started * 1000),
                "requestId": request_id,
                "identity": identity,
                "domainName": host.split(":")[0],
                "apiId": match.api.api_id,
            },
            "body": body_out if body else None,
            "isBase64Encoded": not text and bool(body),
        }

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle
    # http.server answers a method without a do_<METHOD> with its own 501 page; API Gateway answers 403.
    do_TRACE = do_CONNECT = do_QUERY = _handle


def _proxy_response(result: InvokeResult) -> tuple[int, bytes, list[tuple[str, str]]] | None:
    """Map a Lambda proxy response to (status, body, headers); None when API Gateway would answer 502."""
    if not result.ok:
        return None
    try:
        doc = json.loads(result.payload)
        status = int(doc["statusCode"])
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(doc, dict) or not 100 <= status <= 599:
        return None
    headers: list[tuple[str, str]] = []
    single = doc.get("headers") or {}
    multi = doc.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return None
    for name, values in multi.items():
        headers.extend((name, str(v)) for v in (values if isinstance(values, list) else [values]))
    multi_names = {n.lower() for n in multi}
    headers.extend((name, str(v)) for name, v in single.items() if name.lower() not in multi_names)
    headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "connection", "transfer-encoding")]
    body = doc.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        return None
    elif doc.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return None
    else:
        raw = body.encode("utf-8")
    return status, raw, headers
