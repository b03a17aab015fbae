"""scripts/review.py — decide on payments held by fraud review (docs/fraud.md, "Review and risk-gated capture").

    review.py list [--expiring-within HOURS]
    review.py approve TRANSACTION_ID --reason TEXT [--operator NAME]
    review.py decline TRANSACTION_ID --reason TEXT [--operator NAME]

`approve` records the decision (payment.reviewed, with the operator and reason) and captures the
authorization; `decline` records it and cancels the PaymentIntent. Both may be run again after a failure:
the decision is recorded once and every Stripe call is keyed. `list` shows the payments in review with
when their authorization lapses (Stripe cancels an uncaptured one after 7 days), soonest first.

Exit codes: 0 done; 1 refused or failed (one line on stderr says why); 2 bad usage. `list` exits 3 when
an authorization lapses within --expiring-within hours, so a scheduled check can page on it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from paystream_ops.environment import DEFAULT_OUTPUTS, Environment, EnvironmentError_

EXPIRING_EXIT_CODE = 3


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="review.py", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                      help="the environment's outputs (default .local/outputs.json; or `terraform output -json`)")
    commands = main.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="payments held in review, soonest-lapsing authorization first")
    listing.add_argument("--expiring-within", type=float, default=24.0, metavar="HOURS",
                         help="flag authorizations lapsing within this many hours (default 24); exit 3 if any")
    for name, help_text in (("approve", "record the approval and capture the payment"),
                            ("decline", "record the decline and cancel the PaymentIntent")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("transaction_id")
        command.add_argument("--reason", required=True, help="why (recorded with the decision)")
        command.add_argument("--operator", default=os.environ.get("PAYSTREAM_OPERATOR") or getpass.getuser(),
                             help="who decides (default $PAYSTREAM_OPERATOR or the login name)")
    return main


def _service(environment: Environment):
    from paystream.fraud import FraudConfig
    from paystream.review import FraudReviewService, Thresholds

    thresholds = FraudConfig().thresholds
    parameter = (environment.outputs.get("parameter_names") or {}).get("fraud_config")
    if parameter:  # the thresholds the platform runs with
        value = environment.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        thresholds = FraudConfig.from_json(value).thresholds
    return FraudReviewService(environment.event_store(), environment.stripe_gateway(),
                              Thresholds(review=thresholds.review, block=thresholds.block))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def list_held(service, expiring_within: timedelta, now: datetime) -> int:
    from rich.console import Console
    from rich.table import Table

    held = service.held()
    table = Table(title=f"Payments held in review: {len(held)}")
    for column in ("transaction", "amount", "customer", "risk", "PaymentIntent", "authorized", "lapses", "left"):
        table.add_column(column, justify="right" if column in ("amount", "risk", "left") else "left")
    expiring = 0
    for item in held:
        p = item.projection
        left = item.expires_at - now if item.expires_at else None
        soon = left is not None and left <= expiring_within
        expiring += soon
        table.add_row(p.transaction_id, f"{p.amount} {p.currency}", p.customer_id, str(p.risk_score),
                      f"{p.payment_intent_id} ({item.intent_status})", _when(item.authorized_at),
                      _when(item.expires_at),
                      "-" if left is None else f"{left.total_seconds() / 3600:.1f} h",
                      style="bold red" if soon else None)
    Console().print(table)
    if expiring:
        print(f"{expiring} authorization(s) lapse within {expiring_within.total_seconds() / 3600:g} h: "
              "approve or decline them", file=sys.stderr)
        return EXPIRING_EXIT_CODE
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from paystream.adapters.stripe_gateway import PaymentProviderError
    from paystream.review import ReviewRefused
    from paystream.store import EventStoreError

    try:
        service = _service(Environment.load(args.outputs))
        if args.command == "list":
            return list_held(service, timedelta(hours=args.expiring_within), datetime.now(timezone.utc))
        decide = service.approve if args.command == "approve" else service.decline
        projection = decide(args.transaction_id, operator=args.operator, reason=args.reason)
    except (ReviewRefused, EnvironmentError_, EventStoreError, LookupError) as exc:
        print(f"review.py {args.command}: {exc}", file=sys.stderr)
        return 1
    except PaymentProviderError as exc:
        print(f"review.py {args.command}: Stripe refused or failed ({exc}); the decision is recorded, run it "
              "again to finish", file=sys.stderr)
        return 1
    print(f"{projection.transaction_id}: {args.command[:-1]}ed by {args.operator}, now {projection.status.value}")
    return 0
