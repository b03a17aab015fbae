"""Run moto's WSGI app, patched and wrapped in the `/_localdev/` extensions, on a threaded werkzeug server."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys

from werkzeug.serving import make_server

from localdev.emulator import ACCOUNT_ID
from localdev.emulator.extensions import LocalDevExtensions
from localdev.emulator.patches import apply_patches


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4566, help="port to listen on (default 4566)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    # Bind the socket ourselves: werkzeug reports a taken port in two lines and exits from inside the library.
    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = "is already in use — stop what holds it (make local-down) or choose another port"
        else:
            reason = f"cannot be listened on ({exc.strerror or exc}) — choose another --host or --port"
        print(f"emulator: {args.host}:{args.port} {reason}", file=sys.stderr)
        return 1
    # moto services that call back into the server (Step Functions tasks) find it through this.
    os.environ["MOTO_PORT"] = str(args.port)

    # moto's server app; imported only now so that a taken port is reported without paying for moto.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    # Per-request access lines would drown the stack's log; warnings and errors still reach stderr.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    apply_patches()
    app = LocalDevExtensions(DomainDispatcherApplication(create_backend_app), account_id=ACCOUNT_ID)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler, fd=sock.fileno()
    )
    # SIGTERM (how the stack and the test fixture stop us) ends serve_forever cleanly instead of killing mid-write.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"emulator: listening on http://{args.host}:{args.port} (instance {app.instance_id})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        sock.close()
    return 0
