"""`make bench`'s stack part: every stack-based bench module, one after the other, on one local stack.

    python -m localdev.bench_all [--outputs FILE]   # default: its own stack on free ports, down afterwards

One stack instead of one per module (each `local-up` costs minutes). The order matters: cold starts on an
idle stack first, rebuild's whole-table scans while the table is small, the load (hundreds of payments) last.
Each module writes its own bench/*.json; bench_report gathers them afterwards. Stops at the first module that
fails, with its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from localdev.bench_stack import NoStack, bench_stack

# (module, how it is told the stack: `--outputs` the outputs.json, `--state-dir` the directory holding it)
MODULES = (
    ("localdev.bench_cold_start", "--outputs"),  # an idle stack: imports only, the functions' environments from it
    # Whole-table scans: on a table the other modules had filled (cost, webhooks, fraud, ~800 load payments) it
    # measured 1,638 events/s dry run against 2,285 on a fresh one, so it runs while the table is small.
    ("localdev.bench_rebuild", "--outputs"),
    ("localdev.bench_cost", "--outputs"),  # requests counted at the emulator from a reset, per payment
    ("localdev.bench_webhooks", "--state-dir"),
    ("localdev.bench_fraud", "--state-dir"),
    ("localdev.bench_load", "--outputs"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, help="a running stack's outputs.json (default: own stack)")
    args = parser.parse_args(argv)
    try:
        with bench_stack("bench_all", args.outputs or Path(), own_stack=args.outputs is None) as outputs_path:
            for name, option in MODULES:
                print(f"== {name}", flush=True)
                where = outputs_path if option == "--outputs" else outputs_path.parent
                code = importlib.import_module(name).main([option, str(where)])
                if code:
                    print(f"bench_all: {name} exited {code}", file=sys.stderr)
                    return code
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
