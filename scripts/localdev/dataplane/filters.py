"""Lambda event filtering: the FilterCriteria of an event source mapping.

Lambda uses EventBridge's pattern language (https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html):
a pattern is a JSON object whose keys must all match the record; a leaf is a list of alternatives,
each an exact value (string, number, boolean, null) or one operator object: `prefix`, `suffix`,
`anything-but`, `numeric`, `exists`, `equals-ignore-case`, `wildcard`. `$or` takes a list of
sub-patterns. A record passes when any of the (up to 5) filters matches. Where the record's value is
an array, the leaf matches when any element does (as EventBridge).

Lambda filters the record as it will deliver it, except that the payload is parsed as JSON first:
SQS `body`, Kinesis `data` (base64-decoded) — see `sqs_view`, `kinesis_view`. A payload that is not a
JSON object stays a plain string, so an object pattern on it never matches (Lambda drops the record).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

MAX_FILTERS = 5
_MISSING = object()
_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    """A FilterCriteria that Lambda would reject at CreateEventSourceMapping."""


class FilterSet:
    """The compiled FilterCriteria of one mapping; an empty one lets every record through."""

    def __init__(self, filter_criteria: dict | None):
        filters = (filter_criteria or {}).get("Filters") or []
        if len(filters) > MAX_FILTERS:
            raise FilterError(f"FilterCriteria has {len(filters)} filters; Lambda allows at most {MAX_FILTERS}")
        self.patterns: list[dict] = []
        for index, item in enumerate(filters):
            raw = (item or {}).get("Pattern", "")
            try:
                pattern = json.loads(raw)
            except (TypeError, json.JSONDecodeError) as exc:
                raise FilterError(f"FilterCriteria.Filters[{index}].Pattern is not valid JSON ({exc}): {raw!r}") from None
            if not isinstance(pattern, dict):
                raise FilterError(f"FilterCriteria.Filters[{index}].Pattern must be a JSON object, got {raw!r}")
            _validate(pattern, f"Filters[{index}].Pattern")
            self.patterns.append(pattern)

    def matches(self, record: dict) -> bool:
        return not self.patterns or any(matches_pattern(p, record) for p in self.patterns)


def matches_pattern(pattern: dict, event: Any) -> bool:
    """True when `event` (a dict) satisfies every key of `pattern`."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches_pattern(sub, event) for sub in expected):
                return False
            continue
        actual = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(expected, dict):
            candidates = actual if isinstance(actual, list) else [actual]
            if not any(isinstance(c, dict) and matches_pattern(expected, c) for c in candidates):
                return False
        elif not _leaf_matches(expected, actual):
            return False
    return True


def _leaf_matches(alternatives: list, actual: Any) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    for matcher in alternatives:
        if isinstance(matcher, dict) and "exists" in matcher:
            if (actual is not _MISSING) == bool(matcher["exists"]):
                return True
            continue
        if any(v is not _MISSING and _value_matches(matcher, v) for v in values):
            return True
    return False


def _value_matches(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, dict):
        return _equal(matcher, value)
    (op, arg), = matcher.items()
    if op == "prefix":
        if isinstance(arg, dict):  # {"prefix": {"equals-ignore-case": "..."}}
            return isinstance(value, str) and value.lower().startswith(arg["equals-ignore-case"].lower())
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        if isinstance(arg, dict):
            return isinstance(value, str) and value.lower().endswith(arg["equals-ignore-case"].lower())
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if op == "wildcard":
        return isinstance(value, str) and _wildcard_regex(arg).fullmatch(value) is not None
    if op == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return all(_NUMERIC_OPS[arg[i]](value, arg[i + 1]) for i in range(0, len(arg), 2))
    if op == "anything-but":
        if isinstance(arg, dict):  # anything-but a prefix / suffix / equals-ignore-case
            return isinstance(value, str) and not _value_matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_equal(e, value) for e in excluded)
    raise FilterError(f"unsupported filter operator {op!r}")


def _equal(expected: Any, value: Any) -> bool:
    # JSON true is not the number 1, though Python says True == 1.
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value


def _wildcard_regex(pattern: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


_OPERATORS = {"prefix", "suffix", "equals-ignore-case", "wildcard", "numeric", "anything-but", "exists"}


def _validate(pattern: dict, where: str) -> None:
    """Reject what Lambda rejects, with the path of the offending part, so typos do not silently drop records."""
    for key, value in pattern.items():
        path = f"{where}.{key}"
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, dict) for v in value):
                raise FilterError(f"{path} must be a list of at least two pattern objects")
            for i, sub in enumerate(value):
                _validate(sub, f"{path}[{i}]")
        elif isinstance(value, dict):
            _validate(value, path)
        elif isinstance(value, list):
            for matcher in value:
                if isinstance(matcher, dict):
                    _validate_operator(matcher, path)
                elif isinstance(matcher, list):
                    raise FilterError(f"{path}: a match value cannot be a list: {matcher!r}")
        else:
            raise FilterError(f"{path} must be a list of match values or an object, e.g. {{{key!r}: [{value!r}]}}")


def _validate_operator(matcher: dict, path: str) -> None:
    if len(matcher) != 1 or next(iter(matcher)) not in _OPERATORS:
        raise FilterError(f"{path}: {json.dumps(matcher)} is not one operator of {sorted(_OPERATORS)}")
    (op, arg), = matcher.items()
    if op == "numeric":
        ok = isinstance(arg, list) and len(arg) in (2, 4) and all(
            arg[i] in _NUMERIC_OPS and isinstance(arg[i + 1], (int, float)) for i in range(0, len(arg), 2)
        )
        if not ok:
            raise FilterError(f"{path}: numeric needs [op, number] or [op, number, op, number], op in {list(_NUMERIC_OPS)}")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{path}: exists takes true or false")
    elif op in ("prefix", "suffix"):
        if not (isinstance(arg, str) or (isinstance(arg, dict) and set(arg) == {"equals-ignore-case"})):
            raise FilterError(f"{path}: {op} takes a string or {{\"equals-ignore-case\": string}}")
    elif op in ("equals-ignore-case", "wildcard"):
        if not isinstance(arg, str):
            raise FilterError(f"{path}: {op} takes a string")
    elif op == "anything-but" and isinstance(arg, dict):
        _validate_operator(arg, path)


def _json_object_or_none(text: str) -> Any:
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def sqs_view(record: dict) -> dict:
    """The SQS record as filters see it: `body` parsed when it is a JSON object."""
    parsed = _json_object_or_none(record.get("body", ""))
    return record if parsed is None else {**record, "body": parsed}


def kinesis_view(record: dict) -> dict:
    """The Kinesis record as filters see it: its `kinesis` fields at the top, `data` decoded (and parsed when JSON)."""
    kinesis = record.get("kinesis", {})
    raw = base64.b64decode(kinesis.get("data", ""))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    parsed = _json_object_or_none(text) if text is not None else None
    return {**record, **kinesis, "data": parsed if parsed is not None else kinesis.get("data", "")}


def dynamodb_view(record: dict) -> dict:
    """DynamoDB stream records are filtered as delivered (`eventName`, `dynamodb.NewImage.<attr>.S`, …)."""
    return record
