"""Ed25519 signatures on what the service says on the bus (the `cryptography` library).

What is signed, and how a consumer checks it:

- change events and heartbeats: a detached signature over the exact payload bytes, sent in the
  NATS header `Hmr-Signature` (`sign_payload` / `Verifier.check_payload`);
- snapshots, wherever they are stored (a NATS reply, Redis, a JetStream entry): a signature over
  the statement `hmr-snapshot/1 <category> <revision> <digest>` (`sign_snapshot` /
  `Verifier.check_snapshot`). The bytes are then checked against the digest (sha256), so a store
  only has to keep the signature next to the revision and digest it already keeps.

A signature reads `<key id>:<base64url signature>`; the key id (8 bytes of sha256 of the public
key, in hex) only says which accepted key to try. Public keys read `ed25519:<base64url of the 32
raw bytes>`; private keys are PKCS#8 PEM (`hmr keygen` writes them, `openssl genpkey -algorithm
ed25519` too). A consumer accepts one or two public keys (two while a key is being rotated).
Nothing here logs or repeats a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from horde_model_reference.errors import ModelReferenceError, SettingsError

__all__ = [
    "MAX_TRUSTED_KEYS",
    "PUBLIC_KEY_PREFIX",
    "SIGNATURE_HEADER",
    "KeyFileError",
    "SignatureError",
    "Signer",
    "Verifier",
    "generate_private_key_pem",
    "load_signer",
    "load_verifier",
    "public_key_text",
    "sign_payload",
    "sign_snapshot",
    "snapshot_statement",
]

SIGNATURE_HEADER = "Hmr-Signature"
"""The NATS header carrying the detached signature of an event's or heartbeat's payload."""
PUBLIC_KEY_PREFIX = "ed25519:"
MAX_TRUSTED_KEYS = 2
"""The current key and, while rotating, the next (or previous) one."""
_HIDDEN = "<hidden>"


class SignatureError(ModelReferenceError):
    """A payload or snapshot that is unsigned, signed by a key not accepted, or whose signature is wrong."""

    def __init__(self, what: str, reason: str, *, key_id: str | None = None) -> None:
        self.what = what
        self.reason = reason
        self.key_id = key_id
        super().__init__(f"{what}: {reason}")


class KeyFileError(ModelReferenceError):
    """A key file that cannot be written or read."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"key file {str(path)!r}: {reason}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Signer:
    """The service's private key. Its repr and str show the key id only."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = _raw_public(key.public_key())
        self.key_id = _key_id(raw)
        self.public_key = PUBLIC_KEY_PREFIX + _b64(raw)
        """The public key in the form consumers are configured with."""

    def sign(self, message: bytes) -> str:
        """`<key id>:<base64url signature>` of `message`."""
        return f"{self.key_id}:{_b64(self._key.sign(message))}"

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


def snapshot_statement(category: str, revision: int, digest: str) -> bytes:
    """The bytes a snapshot signature covers: its category, revision and digest."""
    return f"hmr-snapshot/1 {category} {revision} {digest}".encode("ascii")


def sign_snapshot(signer: Signer | None, category: str, revision: int, digest: str) -> str | None:
    """The signature to store next to a snapshot's revision and digest (None without a key)."""
    if signer is None:
        return None
    return signer.sign(snapshot_statement(category, revision, digest))


def sign_payload(signer: Signer | None, payload: bytes) -> dict[str, str] | None:
    """The NATS headers that sign `payload` (None without a key)."""
    if signer is None:
        return None
    return {SIGNATURE_HEADER: signer.sign(payload)}


def _parse_public_key(text: str) -> Ed25519PublicKey:
    variable = "HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS"
    expected = f"'{PUBLIC_KEY_PREFIX}' and the base64url of a 32-byte Ed25519 public key (hmr keygen)"
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise SettingsError(variable, text, expected)
    try:
        raw = _unb64(text.removeprefix(PUBLIC_KEY_PREFIX))
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise SettingsError(variable, text, expected) from None


class Verifier:
    """The public keys a consumer accepts; `enabled` is False when none is configured (accept all)."""

    def __init__(self, public_keys: Iterable[str] = ()) -> None:
        keys = [text.strip() for text in public_keys if text.strip()]
        if len(keys) > MAX_TRUSTED_KEYS:
            raise SettingsError(
                "HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS", keys, f"at most {MAX_TRUSTED_KEYS} public keys"
            )
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text in keys:
            key = _parse_public_key(text)
            self._keys[_key_id(_raw_public(key))] = key

    @property
    def enabled(self) -> bool:
        """Whether signatures are required."""
        return bool(self._keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the accepted keys (for logs)."""
        return tuple(self._keys)

    def check(self, what: str, message: bytes, signature: str | None) -> str | None:
        """The key id that signed `message`; raises `SignatureError`. None when nothing is required."""
        if not self._keys:
            return None
        if not signature:
            raise SignatureError(what, "unsigned, and this consumer accepts signed data only")
        key_id, _, encoded = signature.partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError(what, "signed by a key that is not accepted", key_id=key_id)
        try:
            key.verify(_unb64(encoded), message)
        except (InvalidSignature, ValueError, binascii.Error):
            raise SignatureError(what, "bad signature", key_id=key_id) from None
        return key_id

    def check_payload(self, what: str, payload: bytes, headers: Mapping[str, str] | None) -> str | None:
        """Check the `Hmr-Signature` header of a message (see `check`)."""
        return self.check(what, payload, (headers or {}).get(SIGNATURE_HEADER))

    def check_snapshot(self, category: str, revision: int, digest: str, signature: str | None) -> str | None:
        """Check a snapshot's signature over its category, revision and digest (see `check`)."""
        what = f"snapshot {category} revision {revision}"
        return self.check(what, snapshot_statement(category, revision, digest), signature)


def generate_private_key_pem() -> bytes:
    """A new Ed25519 private key, PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _signer_from_pem(pem: bytes, variable: str) -> Signer:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SettingsError(variable, _HIDDEN, f"an unencrypted Ed25519 PKCS#8 PEM key ({reason})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError(variable, _HIDDEN, f"an Ed25519 key, not {type(key).__name__}")
    return Signer(key)


def public_key_text(private_pem: bytes) -> str:
    """The `ed25519:...` public key of a PEM private key."""
    return _signer_from_pem(private_pem, "private key").public_key


def load_signer(*, key_file: str | None = None, key_pem: str | None = None) -> Signer | None:
    """The service's signing key from a PEM file or the PEM text itself; None when neither is set.

    Raises `SettingsError` naming the setting (never the key) when the key is unreadable or not Ed25519.
    """
    if key_pem:
        return _signer_from_pem(key_pem.encode("ascii", "replace"), "HORDE_MODEL_REFERENCE_NATS__SIGNING_KEY")
    if not key_file:
        return None
    variable = "HORDE_MODEL_REFERENCE_NATS__SIGNING_KEY_FILE"
    try:
        pem = Path(key_file).read_bytes()
    except OSError as exc:
        raise SettingsError(
            variable, key_file, f"a readable key file ({os.strerror(exc.errno or 0)})"
        ) from None
    return _signer_from_pem(pem, variable)


def load_verifier(trusted_keys: str | Iterable[str] | None) -> Verifier:
    """The accepted public keys, from a comma-separated setting or a list."""
    if trusted_keys is None:
        return Verifier()
    items = trusted_keys.split(",") if isinstance(trusted_keys, str) else trusted_keys
    return Verifier(items)
