"""What Terraform created in the emulator, read back through the emulator's own AWS APIs.

Functions (with layers and reserved concurrency), REST APIs (resources, methods, AWS_PROXY
integrations, request validators and models, gateway responses, stages), API keys and the usage
plans that make them valid for an API stage. Nothing here is declared by the data plane itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

Clients = Callable[[str], Any]  # service name -> boto3 client bound to the emulator

# arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function arn>/invocations
_INTEGRATION_FUNCTION = re.compile(r":lambda:path/[^/]+/functions/(arn:[^/]+)/invocations")


@dataclass(frozen=True)
class LayerRef:
    arn: str  # layer version ARN: arn:aws:lambda:<region>:<account>:layer:<name>:<version>
    name: str
    version: int
    code_sha256: str


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arn: str
    runtime: str
    handler: str
    code_sha256: str  # base64, as Lambda reports CodeSha256
    timeout: int
    memory_size: int
    env: tuple[tuple[str, str], ...]
    layers: tuple[LayerRef, ...]
    reserved_concurrency: int | None


@dataclass(frozen=True)
class RequestValidation:
    """What a method's request validator checks, with what it needs to check it."""

    validate_body: bool
    validate_parameters: bool
    models: dict[str, str]  # content type ("application/json", "$default") -> JSON Schema text
    required_parameters: tuple[str, ...] = ()  # "method.request.header.Idempotency-Key", …


@dataclass(frozen=True)
class Route:
    api_id: str
    resource_id: str
    resource_path: str  # "/payments/{transaction_id}"
    method: str  # "GET", … or "ANY"
    api_key_required: bool
    function_arn: str | None  # None: the integration is not a Lambda proxy (not served locally)
    validation: RequestValidation | None = None  # None: the method has no request validator


@dataclass(frozen=True)
class RestApiSpec:
    api_id: str
    name: str
    stages: dict[str, dict[str, str]]  # stage name -> stage variables
    routes: tuple[Route, ...]
    # Response type ("BAD_REQUEST_BODY", "DEFAULT_4XX", …) -> GetGatewayResponse's answer.
    gateway_responses: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiKeySpec:
    id: str
    value: str
    enabled: bool
    stages: frozenset[tuple[str, str]]  # (api_id, stage) covered by the key's usage plans


@dataclass
class Discovery:
    functions: list[FunctionSpec] = field(default_factory=list)
    apis: list[RestApiSpec] = field(default_factory=list)
    api_keys: list[ApiKeySpec] = field(default_factory=list)


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict]:
    items: list[dict] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


def discover_functions(clients: Clients) -> list[FunctionSpec]:
    lam = clients("lambda")
    specs = []
    for listed in _paginate(lam, "list_functions", "Functions"):
        fn = lam.get_function(FunctionName=listed["FunctionName"])
        conf = fn["Configuration"]
        reserved = fn.get("Concurrency", {}).get("ReservedConcurrentExecutions")
        if reserved is None:
            reserved = lam.get_function_concurrency(FunctionName=conf["FunctionName"]).get(
                "ReservedConcurrentExecutions"
            )
        layers = []
        for layer in conf.get("Layers", []):
            arn = layer["Arn"]
            parts = arn.split(":")
            # GetLayerVersionByArn answers 500 on moto 5.2.5; by name and number works.
            described = lam.get_layer_version(LayerName=parts[6], VersionNumber=int(parts[7]))
            layers.append(LayerRef(arn, parts[6], int(parts[7]), described["Content"]["CodeSha256"]))
        specs.append(
            FunctionSpec(
                name=conf["FunctionName"],
                arn=conf["FunctionArn"],
                runtime=conf.get("Runtime", "python3.12"),
                handler=conf["Handler"],
                code_sha256=conf["CodeSha256"],
                timeout=int(conf.get("Timeout", 3)),
                memory_size=int(conf.get("MemorySize", 128)),
                env=tuple(sorted(conf.get("Environment", {}).get("Variables", {}).items())),
                layers=tuple(layers),
                reserved_concurrency=reserved,
            )
        )
    return specs


def _function_arn_of(integration: dict) -> str | None:
    if integration.get("type") != "AWS_PROXY":
        return None
    match = _INTEGRATION_FUNCTION.search(integration.get("uri", ""))
    return match.group(1) if match else None


def _validation_of(method: dict, validators: dict[str, dict], models: dict[str, str]) -> RequestValidation | None:
    validator = validators.get(method.get("requestValidatorId") or "")
    if validator is None:
        return None
    return RequestValidation(
        validate_body=bool(validator.get("validateRequestBody")),
        validate_parameters=bool(validator.get("validateRequestParameters")),
        models={ctype: models[name] for ctype, name in (method.get("requestModels") or {}).items() if name in models},
        required_parameters=tuple(sorted(p for p, required in (method.get("requestParameters") or {}).items() if required)),
    )


def discover_apis(clients: Clients) -> tuple[list[RestApiSpec], list[ApiKeySpec]]:
    apigw = clients("apigateway")
    apis = []
    for api in _paginate(apigw, "get_rest_apis", "items"):
        validators = {v["id"]: v for v in _paginate(apigw, "get_request_validators", "items", restApiId=api["id"])}
        models = {m["name"]: m.get("schema") or "{}" for m in _paginate(apigw, "get_models", "items", restApiId=api["id"])}
        routes = []
        for resource in _paginate(apigw, "get_resources", "items", restApiId=api["id"]):
            for method in resource.get("resourceMethods", {}):
                described = apigw.get_method(restApiId=api["id"], resourceId=resource["id"], httpMethod=method)
                routes.append(
                    Route(
                        api_id=api["id"],
                        resource_id=resource["id"],
                        resource_path=resource["path"],
                        method=method.upper(),
                        api_key_required=bool(described.get("apiKeyRequired")),
                        function_arn=_function_arn_of(described.get("methodIntegration") or {}),
                        validation=_validation_of(described, validators, models),
                    )
                )
        stages = {
            stage["stageName"]: dict(stage.get("variables") or {})
            for stage in apigw.get_stages(restApiId=api["id"]).get("item", [])
        }
        responses = {r["responseType"]: r for r in _paginate(apigw, "get_gateway_responses", "items", restApiId=api["id"])}
        apis.append(RestApiSpec(api["id"], api.get("name", ""), stages, tuple(routes), responses))

    covered: dict[str, set[tuple[str, str]]] = {}
    for plan in _paginate(apigw, "get_usage_plans", "items"):
        plan_stages = {(s["apiId"], s["stage"]) for s in plan.get("apiStages", [])}
        for key in _paginate(apigw, "get_usage_plan_keys", "items", usagePlanId=plan["id"]):
            covered.setdefault(key["id"], set()).update(plan_stages)
    keys = [
        ApiKeySpec(k["id"], k.get("value", ""), bool(k.get("enabled")), frozenset(covered.get(k["id"], ())))
        for k in _paginate(apigw, "get_api_keys", "items", includeValues=True)
    ]
    return apis, keys


def discover(clients: Clients) -> Discovery:
    apis, keys = discover_apis(clients)
    return Discovery(functions=discover_functions(clients), apis=apis, api_keys=keys)
