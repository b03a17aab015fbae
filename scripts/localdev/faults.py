"""Fault switches of a running local stack, for the chaos runner (issue 8, item 5):

    from localdev import faults

    faults.set_put_events_failures(outputs, ratio=0.3)                 # or every=3; seed=… for a fixed sequence
    faults.set_dynamodb_write_throttling(outputs, ratio=1.0, table=outputs["table_names"]["transactions"], duration_s=20)
    faults.kill_worker(outputs, "process_payment", when="next-invocation")   # or "now"
    faults.injected(outputs)   # {"put_events_failures": n, "dynamodb_write_throttling": n, "worker_kills": {deployed fn: n}}
    faults.clear(outputs)      # every switch off, armed kills disarmed (counts kept)

`outputs` is the stack's outputs.json as a dict. The EventBridge and DynamoDB switches live in the embedded
emulator (`{aws_endpoint_url}/_localdev/faults`, localdev.emulator.faults), the worker kills in the local data
plane (`{dataplane_url}/_dataplane/chaos`, localdev.dataplane.chaos); docs/local-platform.md, "Fault injection
(chaos)". Neither exists on AWS or LocalStack: there every call raises FaultsUnsupported with one clear line.
Only requests from the functions and other clients are failed (never Terraform's or the data plane's own);
`apps=[…]` narrows that to some functions.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Mapping

TIMEOUT_S = 10


class FaultsUnsupported(RuntimeError):
    """The stack has no fault switches (not the embedded local stack, or not running)."""


def _call(url: str, method: str = "GET", body: dict | None = None, what: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # always local: never through a proxy
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as exc:
        raise FaultsUnsupported(f"{what} is not reachable at {url} ({exc}): is the local stack running (make local-up)?") from exc
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or (status == 404 and doc.get("error") != "function_not_found"):
        raise FaultsUnsupported(f"{url} has no fault switches (HTTP {status}): fault injection needs the embedded "
                                f"local stack (make local-up), not AWS or LocalStack")
    return status, doc


def _emulator(outputs: Mapping[str, Any], method: str = "GET", body: dict | None = None, query: str = "") -> dict:
    endpoint = outputs.get("aws_endpoint_url")
    if not endpoint:
        raise FaultsUnsupported("outputs have no aws_endpoint_url: fault injection needs the embedded local stack "
                                "(make local-up), not AWS")
    status, doc = _call(f"{endpoint.rstrip('/')}/_localdev/faults{query}", method, body, "the emulator")
    if status != 200:
        raise ValueError(f"the emulator refused the fault switch: {doc.get('message', doc)}")
    return doc


def dataplane_url(outputs: Mapping[str, Any]) -> str:
    """The local data plane's control URL: outputs' `dataplane_url`, else what the emulator has registered."""
    url = outputs.get("dataplane_url")
    if not url and outputs.get("aws_endpoint_url"):
        _, doc = _call(f"{outputs['aws_endpoint_url'].rstrip('/')}/_localdev/dataplane", what="the emulator")
        url = doc.get("invoke_url")
    if not url:
        raise FaultsUnsupported("no local Lambda data plane is known for this stack (no dataplane_url in the outputs): "
                                "killing workers needs the embedded local stack (make local-up)")
    return url.rstrip("/")


def _switch(kind: str, ratio: float | None, every: int | None, **options: Any) -> dict:
    if (ratio is None) == (every is None):
        raise ValueError("give exactly one of ratio (0 < ratio <= 1) or every (fail every n-th one)")
    body: dict[str, Any] = {"kind": kind, **({"ratio": ratio} if ratio is not None else {"every": every})}
    body.update({name: value for name, value in options.items() if value is not None})
    return body


def set_put_events_failures(outputs: Mapping[str, Any], ratio: float | None = None, *, every: int | None = None,
                            seed: int | None = None, bus: str | None = None, error: str | None = None,
                            apps: list[str] | None = None, duration_s: float | None = None) -> dict:
    """EventBridge PutEvents fails this share (or every n-th) of the entries, as a partial failure
    (`InternalFailure`, or `error="ThrottlingException"`); failed entries are not delivered. Returns the state."""
    return _emulator(outputs, "POST", _switch("put_events_failures", ratio, every, seed=seed, bus=bus, error=error,
                                              apps=apps, duration_s=duration_s))


def set_dynamodb_write_throttling(outputs: Mapping[str, Any], ratio: float | None = None, table: str | None = None,
                                  duration_s: float | None = None, *, every: int | None = None, seed: int | None = None,
                                  error: str | None = None, apps: list[str] | None = None) -> dict:
    """DynamoDB writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems) answer HTTP 400
    ThrottlingException (on-demand tables) for this share of the requests, optionally to one table and for
    `duration_s` seconds. The SDK retries them (4 attempts in standard mode). Returns the state."""
    return _emulator(outputs, "POST", _switch("dynamodb_write_throttling", ratio, every, seed=seed, table=table,
                                              error=error, apps=apps, duration_s=duration_s))


def kill_worker(outputs: Mapping[str, Any], function: str, when: str = "next-invocation", *, after_ms: float = 0,
                count: int = 1) -> dict:
    """SIGKILL a worker of `function` (its key in outputs' `function_names`, e.g. `process_payment`, or the
    deployed name) mid-invocation (Runtime.ExitError, as a crashed sandbox): `now` (one running an invocation;
    ValueError when none is) or the next `count` invocations, `after_ms` into each."""
    function = (outputs.get("function_names") or {}).get(function, function)
    body = {"function": function, "when": when, **({"after_ms": after_ms, "count": count} if when != "now" else {})}
    status, doc = _call(f"{dataplane_url(outputs)}/_dataplane/chaos/kill-worker", "POST", body, "the data plane")
    if status not in (200, 202):
        raise ValueError(f"the data plane did not kill a {function} worker: {doc.get('message', doc)}")
    return doc


def clear(outputs: Mapping[str, Any]) -> dict:
    """Every switch off and every armed kill disarmed; the counts stay readable. Returns `injected(outputs)`."""
    _emulator(outputs, "DELETE")
    _call(f"{dataplane_url(outputs)}/_dataplane/chaos", "DELETE", what="the data plane")
    return injected(outputs)


def injected(outputs: Mapping[str, Any]) -> dict:
    """What the switches did: PutEvents entries failed and DynamoDB writes throttled since each switch was last
    set, and worker kills per deployed function name (`paystream-local-process-payment`) since the data plane
    started."""
    counts = dict(_emulator(outputs)["injected"])
    counts["worker_kills"] = _call(f"{dataplane_url(outputs)}/_dataplane/chaos", what="the data plane")[1]["kills"]
    return counts


def state(outputs: Mapping[str, Any]) -> dict:
    """The emulator's switches (with `eligible` counts) and the data plane's armed and recent kills."""
    return {**_emulator(outputs), "chaos": _call(f"{dataplane_url(outputs)}/_dataplane/chaos", what="the data plane")[1]}
