"""One module per `reconcile` sub-command. Each exposes:

    HELP: str                                   one line for `reconcile --help`
    add_arguments(parser) -> None               its own flags
    run(args: argparse.Namespace) -> int        the exit code

The common flags (--jobs-dir, --database-url, --format) are added by `reconciler.cli`.
"""
