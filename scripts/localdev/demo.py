"""`make demo`: one payment end to end against the local stack, printing each state as it happens.

Brings the stack up first when it is not running. What it shows today: a card payment made at the
Stripe API (localstripe), Stripe's signed webhook delivered to the platform's REST API, verified by
the `stripe_webhook` function and stored in the transactions table's webhook inbox.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from localdev.stack import Paths, StackError, StackState, _aws_client, _component_ok, up


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
    client = stripe.StripeClient(outputs["stripe_api_key"], base_addresses={"api": outputs["stripe_api_base"]})
    started = time.monotonic()

    def step(text: str) -> None:
        console.print(f"[dim]{(time.monotonic() - started) * 1000:7.0f} ms[/dim]  {text}")

    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    step(f"payment method [bold]{method.id}[/bold] created at Stripe (card data stays at Stripe)")
    intent = client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "eur", "payment_method": method.id, "confirm": True,
                "metadata": {"order_id": "demo-order"}}
    )
    step(f"PaymentIntent [bold]{intent.id}[/bold] 25.00 EUR → status [bold]{intent.status}[/bold]")

    ddb = _aws_client("dynamodb", outputs["aws_endpoint_url"])
    table = outputs["table_names"]["transactions"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = ddb.scan(
            TableName=table, FilterExpression="object_id = :o",
            ExpressionAttributeValues={":o": {"S": intent.id}},
        )["Items"]
        if items:
            for item in items:
                step(f"webhook [bold]{item['event_type']['S']}[/bold] ({item['event_id']['S']}) verified and stored "
                     f"in {table}")
            console.print(f"[green]demo: done[/green] — logs in {outputs['logs_dir']}")
            return 0
        time.sleep(0.2)
    raise StackError(f"no webhook for {intent.id} arrived within 30 s: see {outputs['logs_dir']}/dataplane.log")
