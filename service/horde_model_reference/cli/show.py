"""`hmr show`: what a catalog directory (v2 or legacy) holds, without any server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from horde_model_reference.catalog import DecodedCatalog, catalog_digest, decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor, parse_category
from horde_model_reference.legacy import convert_legacy_directory

__all__ = ["add_show_parser", "load_directory"]


def load_directory(path: Path, *, legacy: bool = False) -> dict[MODEL_REFERENCE_CATEGORY, bytes]:
    """The v2 bytes of every catalog in `path` (legacy files converted when `legacy`)."""
    if legacy:
        return dict(convert_legacy_directory(path))
    found: dict[MODEL_REFERENCE_CATEGORY, bytes] = {}
    for category in MODEL_REFERENCE_CATEGORY:
        v2_file = path / get_category_descriptor(category).v2_filename
        if v2_file.is_file():
            found[category] = v2_file.read_bytes()
    return found


def _summary(decoded: DecodedCatalog, data: bytes) -> str:
    return f"{decoded.category.value:<22} {len(decoded.records):>6} {len(decoded.issues):>7}  {catalog_digest(data)[:12]}"


def _run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_dir():
        print(f"hmr show: {path} is not a directory", file=sys.stderr)
        return 2
    catalogs = load_directory(path, legacy=args.legacy)
    if args.category:
        category = parse_category(args.category)
        if category not in catalogs:
            print(f"hmr show: no {category.value} catalog in {path}", file=sys.stderr)
            return 1
        decoded = decode_catalog(category, catalogs[category])
        if args.model:
            record = decoded.records.get(args.model)
            if record is None:
                print(f"hmr show: no model {args.model!r} in {category.value}", file=sys.stderr)
                return 1
            sys.stdout.write(msgspec.json.format(msgspec.json.encode(record), indent=2).decode() + "\n")
            return 0
        for name in decoded.records:
            print(name)
        return 0
    print(f"{'category':<22} {'models':>6} {'skipped':>7}  digest")
    for category in MODEL_REFERENCE_CATEGORY:
        if category in catalogs:
            print(_summary(decode_catalog(category, catalogs[category]), catalogs[category]))
    return 0


def add_show_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `hmr show`."""
    parser = subparsers.add_parser(
        "show",
        help="summarise a catalog directory (v2 or legacy files)",
        description="Summarise the catalogs in a directory (v2 files, or legacy files converted on the fly).",
    )
    parser.add_argument("path", nargs="?", default="examples/reference", help="catalog directory")
    parser.add_argument(
        "--legacy", action="store_true", help="the directory holds legacy files (GitHub layout)"
    )
    parser.add_argument("--category", help="list the model names of one category")
    parser.add_argument("--model", help="with --category: print one model's record as JSON")
    parser.set_defaults(func=_run)
