"""paystream-ops — operations on a running paystream environment (issue 7; runbooks in docs/runbooks/).

    paystream-ops [--env local|dev|staging|prod | --outputs FILE] dlq list
    paystream-ops dlq peek NAME [--max N]
    paystream-ops dlq redrive NAME [--max N] [--rate R] [--dry-run] [--yes]
    paystream-ops dlq export NAME FILE [--max N]
    paystream-ops dlq purge NAME [--dry-run] [--yes]

NAME is a DLQ's key in the outputs' dlq_urls (as `dlq list` shows it: process-payment, event-bus-targets,
relay-failures-destination...), its queue name or its URL.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from paystream_ops.environment import DEFAULT_OUTPUTS, Environment, EnvironmentError_

PROG = "paystream-ops"
ENVIRONMENTS = ("local", "dev", "staging", "prod")
EXIT_CODES = """exit codes:
  0  done
  1  the operation failed or was not confirmed (one line on stderr says what is left and what to do)
  2  bad usage or environment: unknown DLQ, outputs missing, no confirmation possible without --yes
  3  found something: `dlq list` when any DLQ holds messages (a scheduled check can page on it)"""
# A checkout's root: scripts/paystream_ops/cli.py -> the directory holding terraform/ and .local/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class _Formatter(argparse.HelpFormatter):
    """Texts with their own line breaks (usage summary, exit codes) as written; single paragraphs wrapped."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit 2 (argparse's own usage block is noise at 3 a.m.)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def parser() -> argparse.ArgumentParser:
    common = dict(formatter_class=_Formatter, epilog=EXIT_CODES)
    main = _Parser(prog=PROG, description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1], **common)
    main.add_argument("--env", choices=ENVIRONMENTS, default="local",
                      help="local: .local/outputs.json (make local-up writes it); others: `terraform output -json` "
                           "of terraform/environments/ENV (default local)")
    main.add_argument("--outputs", type=Path, metavar="FILE",
                      help="read the outputs from FILE instead (either shape: .local/outputs.json or "
                           "`terraform output -json`)")
    main.add_argument("--yes", action="store_true", dest="global_yes", help="skip confirmations")
    main.add_argument("--dry-run", action="store_true", dest="global_dry_run",
                      help="show what a command would change, change nothing")
    groups = main.add_subparsers(dest="group", required=True, metavar="{dlq}", parser_class=_Parser)
    dlq = groups.add_parser("dlq", help="dead-letter queues: list, peek, redrive, export, purge",
                            description="Dead-letter queues: what is stuck, why, and putting it back.", **common)
    commands = dlq.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("list", help="every DLQ with depth, oldest message age and source (exit 3 if any holds messages)",
                        description="Every DLQ (consumer DLQs, the event-bus target DLQ, the on-failure "
                                    "destinations) with depth (visible + in flight), the oldest message's age "
                                    "(CloudWatch's ApproximateAgeOfOldestMessage, else the SentTimestamp of a "
                                    "sample) and what feeds it.", **common)

    peek = commands.add_parser("peek", help="messages pretty-printed, envelopes decoded, failure reason; left in place",
                               description="Print messages of a DLQ without consuming them: EventBridge and SNS "
                                           "envelopes decoded, the failure reason when the message carries one. "
                                           "Messages are received with a short visibility timeout and made visible "
                                           "again right after.", **common)
    peek.add_argument("name", metavar="NAME")
    peek.add_argument("--max", type=_positive_int, default=10, metavar="N", help="at most N messages (default 10)")

    redrive = commands.add_parser(
        "redrive", help="send messages back to their source (queue, or the bus for event-bus-targets)",
        description="Put a DLQ's messages back where they failed. A consumer DLQ goes back to its queue: with SQS "
                    "StartMessageMoveTask where the API exists (not with --max, which the API lacks), else receive, "
                    "send, and delete only what was sent. The event-bus target DLQ is re-published to the bus with "
                    "PutEvents (original source, detail-type, detail; every matching rule gets it again); entries "
                    "PutEvents rejects stay in the DLQ. Delivery is at least once: an interrupted redrive run again "
                    "may deliver a message twice, which the consumers tolerate (they are idempotent on the event's "
                    "data, not on the envelope: a state machine that appends nothing twice, idempotency records, "
                    "keyed Stripe calls). Puts the metric paystream/DLQRedriven (dimension Queue = the DLQ's name).", **common)
    redrive.add_argument("name", metavar="NAME")
    redrive.add_argument("--max", type=_positive_int, metavar="N", help="at most N messages (default all)")
    redrive.add_argument("--rate", type=_positive_float, metavar="R", help="at most R messages per second")

    export = commands.add_parser("export", help="write messages as JSON lines to FILE ('-': stdout); left in place",
                                 description="Write a DLQ's messages (raw message and decoded view, one JSON object "
                                             "per line) to FILE, leaving them in the queue.", **common)
    export.add_argument("name", metavar="NAME")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--max", type=_positive_int, metavar="N", help="at most N messages (default all)")

    purge = commands.add_parser("purge", help="delete every message of a DLQ (asks for confirmation unless --yes)",
                                description="Delete every message of a DLQ for good (SQS PurgeQueue). Export "
                                            "first if they may be needed.", **common)
    purge.add_argument("name", metavar="NAME")

    for command in (redrive, purge):
        command.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
        command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return main


def load_environment(env: str, outputs: Path | None) -> Environment:
    if outputs is not None:
        return Environment.load(outputs)
    if env == "local":
        local = DEFAULT_OUTPUTS if DEFAULT_OUTPUTS.exists() else PROJECT_ROOT / DEFAULT_OUTPUTS
        return Environment.load(local)
    directory = PROJECT_ROOT / "terraform" / "environments" / env
    try:
        result = subprocess.run(["terraform", f"-chdir={directory}", "output", "-json"], capture_output=True,
                                text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentError_(f"cannot run terraform output in {directory} ({exc})") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise EnvironmentError_(f"terraform output failed in {directory}: {last} (initialised and applied?)")
    if not json.loads(result.stdout or "{}"):
        raise EnvironmentError_(f"terraform output in {directory} is empty: the environment is not applied")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:  # one parser for both shapes
        handle.write(result.stdout)
        handle.flush()
        return Environment.load(Path(handle.name))


def interactive_confirm(expected: str) -> Callable[[str], bool]:
    """Asks on a terminal for `expected` to be typed; refuses (Refused, exit 2) where no one can answer."""
    from paystream_ops.dlq import Refused

    def confirm(prompt: str) -> bool:
        if not sys.stdin.isatty():
            raise Refused("confirmation needed and stdin is not a terminal: pass --yes (or --dry-run first)")
        try:
            return input(prompt).strip() == expected
        except EOFError:
            return False

    return confirm


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)  # piped: keep table rows on one line


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    from paystream_ops import dlq

    yes = args.global_yes or getattr(args, "yes", False)
    dry_run = args.global_dry_run or getattr(args, "dry_run", False)
    where = f"{PROG} {args.group} {args.command}"
    try:
        environment = load_environment(args.env, args.outputs)
        if args.command == "list":
            return dlq.list_queues(environment, _console(), datetime.now(timezone.utc))
        queue = dlq.resolve(environment, args.name)
        confirm = (lambda prompt: True) if yes else interactive_confirm(queue.key)
        if args.command == "peek":
            return dlq.peek(environment, queue, args.max, _console())
        if args.command == "export":
            return dlq.export(environment, queue, args.file, args.max)
        if args.command == "redrive":
            return dlq.redrive(environment, queue, args.max, args.rate, dry_run, _console(), confirm)
        return dlq.purge(environment, queue, dry_run, confirm)
    except (EnvironmentError_, dlq.Refused) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    except dlq.OperationFailed as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"{where}: AWS refused {exc.operation_name}: {error.get('Code')} {error.get('Message', '')}".rstrip(),
              file=sys.stderr)
        return 1
    except (BotoCoreError, OSError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a redrive deletes only what it sent: running it again finishes the work
        print(f"{where}: interrupted; nothing unsent was deleted, run it again to finish", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
