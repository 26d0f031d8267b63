"""The installation's audit key: audit entries store an HMAC-SHA256 of each match under it, never the match.

One key per data directory, made on first start and kept, so digests of the same value match across
restarts (an operator can tell that two interventions hit the same SSN without storing it)::

    guard = Guard(audit=write, audit_key=audit_key(Path("plinth-data")))
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["AUDIT_KEY_FILE", "audit_key"]

AUDIT_KEY_FILE = "audit.key"  # under the data dir: 32 random bytes, hex, mode 0600


def audit_key(data_dir: Path) -> bytes:
    """The installation's audit key, ``<data_dir>/audit.key``: made on first start (32 random bytes,
    hex, readable by the owner only) and kept. Losing it only unlinks old entries from new ones; the raw
    values were never stored."""
    path = data_dir / AUDIT_KEY_FILE
    if not path.exists():
        _create(path)
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 16:
        raise ValueError(f"{path} holds a {len(key)}-byte key; delete it to make a new one")
    return key


def _create(path: Path) -> None:
    """Write a fresh key beside ``path`` and link it into place: atomic, and it never replaces one, so
    two first starts agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{AUDIT_KEY_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
