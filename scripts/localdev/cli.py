"""`python -m localdev <command>` — one entry point for every local-platform command.

Each command lives in its own module and is imported only when used, so `make local-status`
does not pay for importing moto or Terraform helpers.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help). Each module exposes `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("localdev.stack", "start the local platform (idempotent; redeploys changed code)"),
    "down": ("localdev.stack", "stop what `up` started"),
    "status": ("localdev.stack", "show the running stack"),
    "logs": ("localdev.stack", "follow function and component logs"),
    "demo": ("localdev.stack", "one payment end to end against the local stack"),
    "package": ("localdev.package", "build function zips and layers (deterministic)"),
    "terraform": ("localdev.terraform", "run terraform for an environment with offline provider resolution"),
    "emulator": ("localdev.emulator", "run the embedded AWS emulator (patched moto server)"),
    "stripe": ("localdev.stripe_server", "run localstripe without disk persistence"),
    "dataplane": ("localdev.dataplane.server", "run the local Lambda data plane"),
    "stripe-restart": ("localdev.stripe_faults", "stop localstripe, keep it down (--down-for 10), start it again with its state"),
    "stripe-listen": ("localdev.stripe_listen", "forward real Stripe test-mode webhooks to the local API"),
    "bench": ("localdev.bench_local", "measure local-up time, data plane overhead and SQS latency"),
    "tfdocs": ("localdev.tfdocs", "regenerate the Inputs/Outputs tables of terraform/modules/*/README.md (--check: exit 1 if stale)"),
}


def _usage() -> str:
    lines = ["usage: python -m localdev <command> [options]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"localdev: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if COMMANDS[command][0] == "localdev.stack":
        return module.main([command, *rest])
    return module.main(rest)
