"""Entry point of a worker process: `python -I -S bootstrap.py <handler> <path>...`.

Runs under -I -S so that nothing from the host leaks in: no PYTHON* variables, no user site, and no
`.pth` processing — the editable installs of the project's own packages (`paystream`, `localdev`)
stay invisible, as they are on AWS where only the zip and its layers exist. The given paths (task
root, layer dirs, then this environment's site-packages as the stand-in for the runtime's own
`/var/runtime`) go in front of the standard library, in Lambda's order.
"""

import sys


def main() -> None:
    handler, paths = sys.argv[1], sys.argv[2:]
    stdlib = [p for p in sys.path if p not in paths]
    sys.path[:] = [*paths, *stdlib]
    from awslambdaric.__main__ import main as ric_main

    ric_main(["awslambdaric", handler])


if __name__ == "__main__":
    main()
