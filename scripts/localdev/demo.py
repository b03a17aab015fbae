"""`make demo`: one payment end to end against the local stack, printing each state as it happens.

Brings the stack up first when it is not running. A PaymentMethod is made at the Stripe API
(localstripe: card data never reaches the platform), then `POST /payments` through the REST API
with the stack's API key; the demo follows the payment's events with `GET /payments/{id}` until it
settles and the outbox relay has published them, then shows Stripe's signed webhook stored in the
inbox.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from localdev.stack import Paths, StackError, StackState, _aws_client, _component_ok, up


TERMINAL = {"succeeded", "failed", "canceled", "requires_action", "queued"}


def _request(outputs: dict, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    req = urllib.request.Request(
        f"{outputs['api_url']}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "x-api-key": outputs["api_key"], **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _post_payment(outputs: dict, request: dict, idempotency_key: str):
    return _request(outputs, "POST", "/payments", request, {"Idempotency-Key": idempotency_key})


def _get_payment(outputs: dict, transaction_id: str) -> dict:
    status, body = _request(outputs, "GET", f"/payments/{transaction_id}")
    if status != 200:
        raise StackError(f"GET /payments/{transaction_id} answered {status}: {body}")
    return body


def _all_relayed(outputs: dict, transaction_id: str, count: int) -> bool:
    ddb = _aws_client("dynamodb", outputs["aws_endpoint_url"])
    items = ddb.query(
        TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}}, ConsistentRead=True,
    )["Items"]
    return len(items) == count and all("relayed_at" in item for item in items)


def _stack_outputs(state_dir: Path, backend: str) -> dict:
    paths = Paths(state_dir)
    state = StackState.load(paths.stack)
    running = state is not None and all(_component_ok(state, n) for n in ("emulator", "stripe", "dataplane"))
    if not running or not paths.outputs.exists():
        print("demo: the local stack is not running — bringing it up (make local-up)")
        return up(state_dir, backend)
    return json.loads(paths.outputs.read_text())


def run(state_dir: Path, backend: str = "embedded") -> int:
    import stripe
    from rich.console import Console

    console = Console(soft_wrap=True)  # one line per step, whatever the terminal width
    outputs = _stack_outputs(state_dir, backend)
    started = time.monotonic()

    def step(text: str) -> None:
        console.print(f"[dim]{(time.monotonic() - started) * 1000:7.0f} ms[/dim]  {text}")

    if outputs.get("stripe_mode") == "test-mode":
        # Real Stripe in test mode: its ready-made test PaymentMethod (raw card numbers are refused there).
        payment_method_id = "pm_card_visa"
        step(f"Stripe test mode: paying with Stripe's test PaymentMethod [bold]{payment_method_id}[/bold]")
    else:
        client = stripe.StripeClient(outputs["stripe_api_key"], base_addresses={"api": outputs["stripe_api_base"]})
        method = client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
        )
        payment_method_id = method.id
        step(f"payment method [bold]{method.id}[/bold] created at Stripe (card data stays at Stripe)")
    request = {"amount": 2500, "currency": "eur", "customer_id": "cus_demo", "payment_method_id": payment_method_id,
               "order_id": f"demo-{uuid.uuid4().hex[:8]}", "description": "paystream demo"}
    status, body = _post_payment(outputs, request, idempotency_key=uuid.uuid4().hex)
    if status not in (201, 202):
        raise StackError(f"POST /payments answered {status}: {body}")
    transaction_id = body["transaction_id"]
    step(f"POST /payments → {status}: transaction [bold]{transaction_id}[/bold], status [bold]{body['status']}[/bold], "
         f"PaymentIntent {body['payment_intent_id']}")

    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        payment = _get_payment(outputs, transaction_id)
        for event in payment["events"][len(seen):]:
            seen.append(event["id"])
            step(f"event #{len(seen)} [bold]{event['type']}[/bold] at {event['at']}")
        if payment["status"] in TERMINAL and _all_relayed(outputs, transaction_id, len(seen)):
            step(f"status [bold]{payment['status']}[/bold]; every event published to the bus by the outbox relay")
            break
        time.sleep(0.2)
    else:
        raise StackError(f"payment {transaction_id} did not settle within 30 s: see {outputs['logs_dir']}")

    ddb = _aws_client("dynamodb", outputs["aws_endpoint_url"])
    table = outputs["table_names"]["transactions"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # Every page of the Scan: on a stack that has seen many payments the item is rarely on the first.
        pages = ddb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="object_id = :o",
            ExpressionAttributeValues={":o": {"S": body["payment_intent_id"]}},
        )
        items = [item for page in pages for item in page["Items"]]
        if items:
            for item in items:
                step(f"Stripe webhook [bold]{item['event_type']['S']}[/bold] ({item['event_id']['S']}) verified and "
                     f"stored in the inbox")
            console.print(f"[green]demo: done[/green] — logs in {outputs['logs_dir']}")
            return 0
        time.sleep(0.2)
    raise StackError(f"no webhook for {body['payment_intent_id']} arrived within 30 s: see {outputs['logs_dir']}/dataplane.log")
