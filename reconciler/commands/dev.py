"""`reconcile dev` (being written: see the open issue)."""

from __future__ import annotations

import argparse

HELP = "dev (not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise SystemExit("reconcile dev is not available yet")
