"""HTTP-level checks shared by the API handlers: body size, content type, Idempotency-Key, JSON, model.

Pure functions returning either the parsed request or an `ApiError` ready to send; no AWS calls.
Every client mistake ends in a 4xx with a message, never a 5xx (DESIGN.md §2).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from paystream.models import validation_details

MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class ApiError(Exception):
    status_code: int
    error: str
    message: str | None = None
    details: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After on a 503

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.message:
            body["message"] = self.message
        if self.details or self.error == "validation_error":
            body["details"] = self.details
        return body


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", details=[{"field": field_name, "message": message}])


def body_text(event: Any) -> str | None:
    """A REST event's body as text. One that is not UTF-8 arrives base64-encoded and Powertools' `decoded_body`
    raises on it: that is the client's mistake (400), not a crash (502)."""
    try:
        return event.decoded_body
    except UnicodeDecodeError:
        raise invalid("body", "is not UTF-8 text: send a JSON object") from None


def idempotency_key(headers: Mapping[str, str]) -> str:
    key = headers.get("Idempotency-Key")
    if key is None or key == "":
        raise invalid("Idempotency-Key", "header is required (1 to 255 characters): a unique key per payment attempt")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise invalid("Idempotency-Key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    return key


def parse_json_body(model: type[ModelT], body: str | None, headers: Mapping[str, str], *, required: bool = True) -> ModelT:
    """Check size and content type, parse JSON and validate it with `model`."""
    raw = (body or "").encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} (64 KiB)")
    if not raw.strip():
        if required:
            raise invalid("body", "is required: send a JSON object")
        return model.model_validate({})
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise invalid("Content-Type", f"must be application/json (got {content_type or 'none'})")
    try:
        data = json.loads(body or "")
    except ValueError as exc:
        raise invalid("body", f"is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_error", details=validation_details(exc)) from None


def caller_identity(request_context: Mapping[str, Any]) -> str:
    """Who is calling: the API key's id (API Gateway sets it on methods that require a key)."""
    identity = request_context.get("identity") or {}
    return identity.get("apiKeyId") or identity.get("apiKey") or "anonymous"


# ---------------------------------------------------------------- idempotent API requests
# What every POST with an Idempotency-Key shares: keyed by the caller's API key id and the header, the request
# as the payload to validate. POST /payments/{id}/refunds runs under Powertools idempotency (below); POST
# /payments keeps its record in the event store's transactions (paystream.payments) and shares the answers.

IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600


def _mark_replayed(response: dict, data_record: Any) -> dict:
    return {**response, "replayed": True}


def request_idempotency(table_name: str, dynamodb_client: Any) -> tuple[Any, Any]:
    """(persistence layer, config) for `idempotent_function(data_keyword_argument="command", …)` over
    commands built by `idempotent_command`. A replayed outcome carries `"replayed": True`."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    config = IdempotencyConfig(
        event_key_jmespath="[caller, idempotency_key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
        response_hook=_mark_replayed,
    )
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb_client), config


def idempotent_command(caller: str, key: str, request: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """The idempotent function's argument: keyed by caller + key, validated on `request`."""
    return {"caller": caller, "idempotency_key": key, "request": dict(request), **fields}


# What AWS answers a request rate above what a table or the account allows, once the SDK's retries are spent.
THROTTLING_ERROR_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException",
                                    "RequestLimitExceeded", "Throttling", "TooManyRequestsException"})
OVERLOADED_RETRY_AFTER_SECONDS = 2


def aws_throttled(exc: BaseException | None) -> bool:
    """Whether AWS throttling caused `exc`: a botocore ClientError with a throttling code anywhere in its chain
    (the event store and the idempotency layer wrap it)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and (response.get("Error") or {}).get("Code") in THROTTLING_ERROR_CODES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def request_in_progress() -> ApiError:
    return ApiError(409, "request_in_progress", "a request with this Idempotency-Key is still being processed: retry shortly")


def idempotency_key_reused() -> ApiError:
    return ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request body: use a new key")


class idempotency_refusals:  # noqa: N801 - used as a `with` statement, like contextlib's helpers
    """Powertools' refusals as API errors: the same key still in flight → 409, with another body → 422.
    And AWS throttling that outlasted the SDK's retries → 503 with Retry-After, not a bare 502: the request
    left nothing the same key cannot finish (Powertools removes the key's in-progress record; where that
    removal was throttled too, the retry gets 409 until the record expires).

    A class rather than @contextmanager: contextlib assigns `__traceback__` on exceptions passing
    through a generator, which a frozen ApiError raised inside the block would refuse."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        if isinstance(exc, IdempotencyAlreadyInProgressError):
            raise request_in_progress() from None
        if isinstance(exc, IdempotencyValidationError):
            raise idempotency_key_reused() from None
        if aws_throttled(exc):
            logging.getLogger(__name__).warning("AWS throttled the request beyond the SDK's retries; answered 503: %s", exc)
            raise ApiError(503, "service_unavailable",
                           f"the platform is over its capacity for a moment: retry in {OVERLOADED_RETRY_AFTER_SECONDS} s "
                           "with the same Idempotency-Key", headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)}
                           ) from exc
        return False
