"""API Gateway request models (JSON Schema draft-04) generated from the pydantic request models.

    python -m localdev.api_schemas           # (re)write terraform/modules/api/schemas/*.json
    python -m localdev.api_schemas --check   # exit 1 when a committed schema differs from the models

API Gateway validates a request body against its model before it invokes the function, and answers
a body that fails with a generic 400 ("Invalid request body"). The function's own validation is
more precise: one `{"field", "message"}` per problem, and 413 for a body over 64 KiB (DESIGN.md §2).
So the model the gateway gets checks only the *shape* of the document: that it is an object, which
fields exist and are required, and each field's JSON type. Everything about *values* (ranges,
lengths, currency and country codes, formats, enums, metadata key count) stays with the function,
whose answers clients and tests rely on. The gateway still turns away junk (non-objects, unknown or
missing fields, wrong types) before it costs an invocation.

pydantic emits JSON Schema 2020-12; API Gateway models are draft-04. The conversion inlines `$ref`s
(no `$defs`), drops the value and annotation keywords (`const`, `examples`, `propertyNames`, … have
no draft-04 meaning or are values), turns `anyOf: [{type: X}, {type: null}]` into `type: [X, null]`,
and refuses any keyword it does not know, so a new pydantic construct cannot slip through unnoticed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = PROJECT_ROOT / "terraform" / "modules" / "api" / "schemas"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"

# Structure: kept (and recursed into where they hold schemas).
SHAPE_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "anyOf"}
# Values and annotations: left to the function's validation, or meaningless to a validator.
VALUE_KEYWORDS = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "format",
    "minProperties", "maxProperties", "propertyNames",
    "minItems", "maxItems", "uniqueItems",
    "enum", "const",
}
ANNOTATION_KEYWORDS = {"title", "default", "examples", "deprecated", "readOnly", "writeOnly"}


def _request_models() -> dict[str, type[BaseModel]]:
    from paystream.models import PaymentRequest, RefundRequest

    return {"payment-request.json": PaymentRequest, "refund-request.json": RefundRequest}


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix):] not in defs:
        raise ValueError(f"cannot inline $ref {ref!r}: only local #/$defs/ references are supported")
    return defs[ref[len(prefix):]]


def _shape(schema: dict[str, Any], defs: dict[str, Any], path: str, describe: bool = False, depth: int = 0) -> dict[str, Any]:
    """`schema` reduced to its shape; `describe` keeps its description (the body's and each field's)."""
    if depth > 32:
        raise ValueError(f"{path}: $ref nesting too deep (a recursive model cannot be inlined for draft-04)")
    if "$ref" in schema:
        # pydantic puts a field's description beside its $ref; the referenced model has its own.
        inlined = _shape(_resolve(schema["$ref"], defs), defs, path, describe, depth + 1)
        if describe and "description" in schema:
            inlined = {"description": schema["description"], **{k: v for k, v in inlined.items() if k != "description"}}
        return inlined
    unknown = set(schema) - SHAPE_KEYWORDS - VALUE_KEYWORDS - ANNOTATION_KEYWORDS - {"description"}
    if unknown:
        raise ValueError(f"{path}: JSON Schema keyword(s) {sorted(unknown)} not handled by the draft-04 conversion")
    out: dict[str, Any] = {}
    if describe and "description" in schema:
        out["description"] = schema["description"]
    if "anyOf" in schema:
        options = [_shape(option, defs, f"{path}/anyOf", depth=depth + 1) for option in schema["anyOf"]]
        if all(set(option) == {"type"} for option in options):
            types: list[str] = []
            for option in options:
                for kind in option["type"] if isinstance(option["type"], list) else [option["type"]]:
                    if kind not in types:
                        types.append(kind)
            out["type"] = types[0] if len(types) == 1 else types
        else:
            out["anyOf"] = options
    if "type" in schema:
        out["type"] = schema["type"]
    if "properties" in schema:
        out["properties"] = {
            name: _shape(prop, defs, f"{path}/{name}", describe=True, depth=depth + 1)
            for name, prop in schema["properties"].items()
        }
    if schema.get("required"):
        out["required"] = list(schema["required"])
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        out["additionalProperties"] = extra if isinstance(extra, bool) else _shape(extra, defs, f"{path}/*", depth=depth + 1)
    if "items" in schema:
        out["items"] = _shape(schema["items"], defs, f"{path}/items", depth=depth + 1)
    return out


def gateway_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The draft-04 API Gateway model for `model`: its shape, none of its value constraints."""
    source = model.model_json_schema(mode="validation")
    defs = source.get("$defs", {})
    body = _shape({k: v for k, v in source.items() if k != "$defs"}, defs, model.__name__, describe=True)
    return {"$schema": DRAFT_04, "title": model.__name__, **body}


def render(model: type[BaseModel]) -> str:
    return json.dumps(gateway_schema(model), indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    return {SCHEMAS_DIR / name: render(model) for name, model in _request_models().items()}


def drifted(files: dict[Path, str] | None = None) -> list[Path]:
    """The schema files whose committed text differs from what the models generate."""
    files = expected_files() if files is None else files
    return [path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.api_schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    files = expected_files()
    stale = drifted(files)
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(PROJECT_ROOT)} (run python -m localdev.api_schemas)", file=sys.stderr)
        return 1 if stale else 0
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
