"""HTTP-level checks shared by the API handlers: body size, content type, Idempotency-Key, JSON, model.

Pure functions returning either the parsed request or an `ApiError` ready to send; no AWS calls.
Every client mistake ends in a 4xx with a message, never a 5xx (DESIGN.md §2).
"""

from __future__ import annotations

import json
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

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.message:
            body["message"] = self.message
        if self.details or self.error == "validation_error":
            body["details"] = self.details
        return body


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", details=[{"field": field_name, "message": message}])


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
