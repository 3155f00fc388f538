"""`reconcile validate` (being written: see the open issue)."""

from __future__ import annotations

import argparse

HELP = "validate (not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise SystemExit("reconcile validate is not available yet")
