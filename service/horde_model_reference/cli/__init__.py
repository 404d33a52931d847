"""The `hmr` command: `main` parses arguments and runs a subcommand (serve, status, watch, writes, ...)."""

from horde_model_reference.cli.main import build_parser, main, seed_base_path

__all__ = ["build_parser", "main", "seed_base_path"]
