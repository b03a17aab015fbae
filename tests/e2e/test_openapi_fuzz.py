"""Fuzzing the running API from docs/openapi.json with schemathesis (issue 8, item 6).

Every operation of the document gets schemathesis' three phases, reproducibly (fixed seed,
derandomized): its documented example, the coverage phase (boundary values, each required header and
field missing, wrong types) and `MAX_EXAMPLES` fuzzed cases, positive and negative. For every request:
no 5xx, and the answer is one the document describes (status code, content type, headers, body).
Negative cases must be refused with a 4xx, and so must a request missing a required header.

The caller's headers are added here, not generated: the stack's API key (withheld, or replaced by a
wrong one, on every few cases: those must get 403), and a fresh Idempotency-Key per case unless the
case's headers are the negative part (then schemathesis' missing or garbled key is sent as it is).
Every few cases reuse the operation's previous key instead, so replays (200), reuse with another body
(422) and keys still in flight (409) are fuzzed too. Stripe-Signature is never valid here: every
webhook must get 400.

Then one real payment (the documented example, paid with a Stripe test card) is followed through the
document's links (GET, refund, replay, key reused), so the answers about a payment that exists are
checked too.

Kept small for `make test`: about 320 requests (about 30 s on the local stack), half of them turned
away by the gateway. The counts per operation and status are printed at the end of each test.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localdev.openapi import DOC_PATH

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 20  # fuzzed cases per operation (the examples and coverage phases add their own)
SEED = 20260808
# A case of every WITHHOLD_EVERY-th withholds the API key, the one after it sends a wrong one;
# every REUSE_EVERY-th case with generated headers reuses the previous Idempotency-Key.
WITHHOLD_EVERY = 9
REUSE_EVERY = 5
WARM_UP_SECONDS = 120
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, missing_required_header]

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "suppress-health-check": ["all"],
    "generation": {
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,  # Hypothesis' derandomize: the same cases on every run and machine
        "database": "none",
        "no-shrink": True,  # a failure is reported as found (with a curl line), not re-sent hundreds of times
        "with-security-parameters": False,  # the API key is added by the test (see api_key_for)
    },
})
schema = schemathesis.openapi.from_path(DOC_PATH, config=CONFIG)


class Tally:
    """What one operation's run sent and got: cases by status, the keys it used."""

    def __init__(self) -> None:
        self.cases = 0
        self.by_status: collections.Counter[int] = collections.Counter()
        self.by_phase: collections.Counter[str] = collections.Counter()
        self.last_key: str | None = None


def report(request, line: str) -> None:
    """On the terminal even when pytest captures output: the counts are this test's record of what it covered."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture(scope="module")
def warm_functions(outputs):
    """One request per route before fuzzing, repeated while it gets a 5xx: a function's first start on a loaded
    machine can outlast its timeout (API Gateway's 502), which says nothing about how it handles input."""
    key = {"x-api-key": outputs["api_key"], "Content-Type": "application/json"}
    requests = [  # each reaches its function and is refused there (no payment, no refund, nothing stored)
        ("POST", "/payments", {**key, "Idempotency-Key": f"fuzz-warm-{uuid.uuid4()}"}, {"amount": 0}),
        ("GET", "/payments/fuzz-warm-up", key, None),
        ("POST", "/payments/fuzz-warm-up/refunds", {**key, "Idempotency-Key": f"fuzz-warm-{uuid.uuid4()}"}, {}),
        ("POST", "/webhooks/stripe", {"Content-Type": "application/json"}, {"id": "evt_fuzz_warm_up", "type": "x"}),
    ]
    deadline = time.monotonic() + WARM_UP_SECONDS
    for method, path, headers, body in requests:
        while True:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(outputs["api_url"] + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            if status < 500:
                break
            assert time.monotonic() < deadline, f"{method} {path} still answers {status} after {WARM_UP_SECONDS} s"
            time.sleep(1)


@pytest.fixture()
def tally(request, warm_functions):
    """One per operation (schemathesis runs each operation's cases in one test item)."""
    seen = Tally()
    yield seen
    line = (f"openapi fuzz {request.node.name}: {seen.cases} cases "
            f"({', '.join(f'{phase} {n}' for phase, n in sorted(seen.by_phase.items()))}); "
            f"status {dict(sorted(seen.by_status.items()))}")
    report(request, line)
    # A run that sent (almost) nothing would pass without testing anything.
    assert seen.cases >= MAX_EXAMPLES // 2, f"too few cases ran: {line}"


def _headers_negated(case) -> bool:
    """Whether the case's headers are what schemathesis made invalid (a missing or garbled Idempotency-Key)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    component = meta.components.get(ParameterLocation.HEADER)
    return (component is not None and component.mode.is_negative) or \
        meta.phase.data.parameter_location == ParameterLocation.HEADER


def takes_idempotency_key(case) -> bool:
    return any(p["in"] == "header" and p["name"] == "Idempotency-Key"
               for p in case.operation.definition.raw.get("parameters", []))


def api_key_for(n: int, api_key: str) -> str | None:
    if n % WITHHOLD_EVERY == WITHHOLD_EVERY - 2:
        return None
    if n % WITHHOLD_EVERY == WITHHOLD_EVERY - 1:
        return "fuzz-not-the-api-key"
    return api_key


@schema.parametrize()
def test_every_generated_request_is_answered_as_documented_and_never_with_a_5xx(case, outputs, tally):
    n = tally.cases
    tally.cases += 1
    tally.by_phase[case.meta.phase.name.value if case.meta else "explicit"] += 1
    headers: dict[str, str] = {}
    api_key = api_key_for(n, outputs["api_key"])
    if api_key is not None:
        headers["x-api-key"] = api_key
    if takes_idempotency_key(case) and not _headers_negated(case):
        reuse = tally.last_key is not None and n % REUSE_EVERY == REUSE_EVERY - 1
        headers["Idempotency-Key"] = tally.last_key if reuse else f"fuzz-{uuid.uuid4()}"
        tally.last_key = headers["Idempotency-Key"]

    response = case.call(base_url=outputs["api_url"], headers=headers, timeout=60)
    tally.by_status[response.status_code] += 1

    # The curl line names the key's place, not the key (schemathesis' own reports mask it too).
    curl = case.as_curl_command({**headers, **({"x-api-key": "$API_KEY"} if "x-api-key" in headers else {})},
                                base_url=outputs["api_url"])
    assert response.status_code < 500, f"{case.operation.label} answered {response.status_code}: {response.text[:500]}\n{curl}"
    secured = bool(case.operation.definition.raw.get("security"))
    if secured and api_key != outputs["api_key"]:
        assert response.status_code == 403, f"without a valid API key: {response.status_code} {response.text[:300]}\n{curl}"
    if case.operation.label == "POST /webhooks/stripe" and case.method.upper() == "POST":
        # Nothing here can sign: every delivery is refused, never stored.
        assert response.status_code == 400, f"unsigned webhook: {response.status_code} {response.text[:300]}\n{curl}"
    case.validate_response(response, checks=CHECKS, headers=headers)


REFUND_AMOUNT = 1000
SETTLE_SECONDS = 60


def _linked(response, operation: str, status: int, target: str) -> dict[str, str]:
    """The path parameters the document's link from that answer to `target` names, resolved in its body."""
    link = schema.raw_schema["paths"][operation.split(" ")[1]][operation.split(" ")[0].lower()]["responses"][
        str(status)]["links"][target]
    body = response.json()
    parameters = {}
    for name, expression in link["parameters"].items():
        assert expression.startswith("$response.body#/"), expression
        parameters[name] = body[expression.removeprefix("$response.body#/")]
    return parameters


def test_a_real_payment_followed_by_its_documented_links_is_answered_as_documented(outputs, warm_functions, request):
    """The fuzzed payments above fail at Stripe (the example's payment method is unknown there), so the answers
    about a payment that exists are checked here, deterministically: the documented example paid with a
    Stripe test card, then GET and refund followed through the document's links, then the refund replayed
    and reused with another body. Every answer goes through the same schemathesis checks."""
    seen: collections.Counter[str] = collections.Counter()

    def send(operation: str, *, path_parameters=None, body=None, key: str | None = None):
        method, path = operation.split(" ")
        headers = {"x-api-key": outputs["api_key"], **({"Idempotency-Key": key} if key else {})}
        content = {"body": body, "media_type": "application/json"} if body is not None else {}
        case = schema[path][method].Case(path_parameters=path_parameters, headers=headers, **content)
        response = case.call(base_url=outputs["api_url"], timeout=60)
        seen[f"{operation} {response.status_code}"] += 1
        assert response.status_code < 500, f"{operation}: {response.status_code} {response.text[:500]}"
        case.validate_response(response, checks=CHECKS, headers=headers)
        return response

    raw = schema.raw_schema["paths"]
    example = raw["/payments"]["post"]["requestBody"]["content"]["application/json"]["example"]
    created = send("POST /payments", body={**example, "payment_method_id": "pm_card_visa",
                                           "order_id": f"fuzz-{uuid.uuid4().hex[:12]}"}, key=f"fuzz-{uuid.uuid4()}")
    assert created.status_code == 201 and created.json()["status"] == "succeeded", created.text
    payment = _linked(created, "POST /payments", 201, "get_payment")
    deadline = time.monotonic() + SETTLE_SECONDS
    while (got := send("GET /payments/{transaction_id}", path_parameters=payment)).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, f"payment not succeeded after {SETTLE_SECONDS} s: {got.text[:300]}"
        time.sleep(0.5)

    refund_example = raw["/payments/{transaction_id}/refunds"]["post"]["requestBody"]["content"]["application/json"][
        "example"]
    assert refund_example["amount"] == REFUND_AMOUNT
    key = f"fuzz-{uuid.uuid4()}"
    target = _linked(created, "POST /payments", 201, "refund_payment")
    refund = send("POST /payments/{transaction_id}/refunds", path_parameters=target, body=refund_example, key=key)
    assert refund.status_code == 201, refund.text
    replay = send("POST /payments/{transaction_id}/refunds", path_parameters=target, body=refund_example, key=key)
    assert (replay.status_code, replay.json()) == (200, refund.json())
    reused = send("POST /payments/{transaction_id}/refunds", path_parameters=target,
                  body={**refund_example, "amount": REFUND_AMOUNT + 1}, key=key)
    assert reused.status_code == 422, reused.text
    after = send("GET /payments/{transaction_id}", path_parameters=_linked(refund, "POST /payments/{transaction_id}/refunds",
                                                                          201, "get_payment"))
    assert after.json()["amount_refunded"] == REFUND_AMOUNT, after.text
    report(request, f"openapi fuzz links: {dict(sorted(seen.items()))}")
