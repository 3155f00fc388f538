"""`reconcile api [--host H] [--port P]`: the read-only status API (uvicorn, one worker).

Runs until SIGTERM or SIGINT, then stops cleanly (in-flight requests finish, pools close)
and exits 0; exits 1 when it cannot start (e.g. the port is taken).
"""

from __future__ import annotations

import argparse

from reconciler.commands._common import settings_from

HELP = "serve the read-only status API (default 127.0.0.1:8000)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (env RECONCILER_API_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (env RECONCILER_API_PORT)")
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per request"
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.api.server import serve

    settings = settings_from(args)
    return serve(
        settings,
        host=args.host or settings.api_host,
        port=args.port if args.port is not None else settings.api_port,
        access_log=not args.no_access_log,
    )
