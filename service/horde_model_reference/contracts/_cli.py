"""Export the wire contracts and the settings table from the msgspec Structs.

The command line of `python -m horde_model_reference.contracts` (usage: the package docstring).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from horde_model_reference.contracts._files import check, write_contract_files
from horde_model_reference.contracts._settings_table import replace_settings_table, settings_table

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m horde_model_reference.contracts`."""
    parser = argparse.ArgumentParser(
        prog="python -m horde_model_reference.contracts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", nargs="?", help="directory to write the contracts into (e.g. contracts/)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when OUT_DIR differs from a fresh generation"
    )
    parser.add_argument(
        "--settings-table",
        nargs="?",
        const="-",
        metavar="MARKDOWN",
        help="print the settings table, or replace the generated block of MARKDOWN with it",
    )
    args = parser.parse_args(argv)
    if args.settings_table is not None:
        if args.settings_table == "-":
            sys.stdout.write(settings_table())
        elif replace_settings_table(Path(args.settings_table)):
            print(f"updated the settings table in {args.settings_table}")
    if args.out_dir is None:
        if args.settings_table is None:
            parser.error("give OUT_DIR and/or --settings-table")
        return 0
    out_dir = Path(args.out_dir)
    if args.check:
        problems = check(out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("contracts are out of date: run `make contracts`", file=sys.stderr)
        return 1 if problems else 0
    changed = write_contract_files(out_dir)
    print(f"{len(changed)} contract file(s) updated in {out_dir}" if changed else f"{out_dir} is up to date")
    return 0
