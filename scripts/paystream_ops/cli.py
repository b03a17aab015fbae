"""paystream-ops — operations on a running paystream environment (issue 7; runbooks in docs/runbooks/).

    paystream-ops [--env local|dev|staging|prod | --outputs FILE] [--yes] [--dry-run] COMMAND ...
    paystream-ops dlq list|peek|redrive|export|purge ...   dead-letter queues (docs/runbooks/dlq.md)
    paystream-ops replay --from T [--to T] [--pattern JSON] [--source archive|table]
                                                           deliver a window's events again (docs/runbooks/gaps.md)
    paystream-ops gaps [--grace D] [--stuck-after D]       never relayed, projections behind, stuck payments
    paystream-ops rebuild [--payment ID ...]               projections folded again from events (docs/runbooks/rebuild.md)
    paystream-ops reconcile --from T --to T [--fix]        the platform against Stripe (docs/runbooks/reconcile.md)

Each command has --help. Times: ISO 8601 (UTC unless an offset is given), `now`, or a duration ago (2h).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from paystream_ops.common import (EXIT_CODES, EXIT_FAILED, EXIT_USAGE, Context, OperationFailed, Refused)
from paystream_ops.environment import DEFAULT_OUTPUTS, Environment, EnvironmentError_

PROG = "paystream-ops"
ENVIRONMENTS = ("local", "dev", "staging", "prod")
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


def command_modules() -> list:
    """Each command's module, in `--help` order; each adds its parser (paystream_ops.common)."""
    from paystream_ops import dlq, gaps, rebuild, reconcile, replay

    return [dlq, replay, gaps, rebuild, reconcile]


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
    groups = main.add_subparsers(dest="group", required=True, parser_class=_Parser)
    for module in command_modules():
        module.register(groups, common)
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


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)  # piped: keep table rows on one line


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    where = " ".join(filter(None, [PROG, args.group, getattr(args, "command", None)]))
    try:
        context = Context(load_environment(args.env, args.outputs), _console(),
                          yes=args.global_yes or getattr(args, "yes", False),
                          dry_run=args.global_dry_run or getattr(args, "dry_run", False),
                          now=datetime.now(timezone.utc))
        return args.handler(args, context)
    except (EnvironmentError_, Refused) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OperationFailed as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"{where}: AWS refused {exc.operation_name}: {error.get('Code')} {error.get('Message', '')}".rstrip(),
              file=sys.stderr)
        return EXIT_FAILED
    except (BotoCoreError, OSError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # every command leaves a state that running it again finishes
        print(f"{where}: interrupted; run it again to finish (see its --help for what an interruption leaves)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
