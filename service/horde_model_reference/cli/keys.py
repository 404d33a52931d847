"""`hmr keygen`: the Ed25519 key pair that signs what the service says on the bus (`bus.signing`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from horde_model_reference.bus.signing import KeyFileError, generate_private_key_pem, public_key_text

__all__ = ["add_keys_parser", "write_private_key"]


def write_private_key(path: Path, *, force: bool = False) -> str:
    """Write a new private key to `path` (mode 0600, never over an existing file unless `force`);
    returns its public key. Raises `KeyFileError`."""
    pem = generate_private_key_pem()
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(path, "exists already (pass --force to replace it)") from None
    except OSError as exc:
        raise KeyFileError(path, exc.strerror or type(exc).__name__) from None
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(path, 0o600)
    return public_key_text(pem)


def _run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if args.public:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(path, exc.strerror or type(exc).__name__) from None
        print(public_key_text(pem))
        return 0
    public = write_private_key(path, force=args.force)
    print(public)
    print(
        f"private key written to {path} (keep it secret: HORDE_MODEL_REFERENCE_NATS__SIGNING_KEY_FILE of "
        "hmr serve); give consumers the line above in HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS",
        file=sys.stderr,
    )
    return 0


def add_keys_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `hmr keygen`."""
    parser = subparsers.add_parser(
        "keygen",
        help="make the key pair that signs events, heartbeats and snapshots",
        description=(
            "Write a new Ed25519 private key (PEM, mode 0600) to PATH and print its public key "
            "(ed25519:...). The service signs with the private key (HORDE_MODEL_REFERENCE_NATS__SIGNING_KEY_FILE); "
            "consumers accept the public key (HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS). docs/operators.md "
            "explains rotation."
        ),
    )
    parser.add_argument("path", help="where to write the private key (or, with --public, where it is)")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.add_argument(
        "--public", action="store_true", help="print the public key of the existing private key at PATH"
    )
    parser.set_defaults(func=_run)
