"""The vocabulary the synthetic cost generator draws from: accounts, regions and usage profiles.

A *profile* is one kind of metered usage as it appears in a Cost and Usage Report: a product code, a
usage type, an operation, a pricing unit and a public on-demand rate, plus the ``product_*`` attributes
AWS attaches. The values are the ones the public CUR Query Library filters on (``AmazonEC2`` +
``%BoxUsage%`` + ``RunInstances``, ``NAT Gateway`` + ``NatGateway-Hours``, S3 ``TimedStorage-ByteHrs``
with ``StandardStorage`` ...), so its queries find rows in the generated data. Rates are list-price-like
(USD), not quotes. Nothing here is random: the generator samples from these lists with its own seed.

The values are data, in ``cost_catalog.json`` beside this module (read once, at import); a profile lists
only the fields that differ from :class:`Profile`'s defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CATALOG_PATH", "LINKED_ACCOUNTS", "PAYERS", "PROFILES", "REGIONS", "Profile", "Region"]

CATALOG_PATH = Path(__file__).with_name("cost_catalog.json")


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    prefix: str  # usage-type prefix, e.g. "USE1"
    name: str  # product_location
    weight: float


@dataclass(frozen=True, slots=True)
class Profile:
    """One metered usage kind. ``resource`` names a resource-id template; ``commit`` says which
    commitments may cover it ("sp", "ri", "sp+ri"); ``steady`` marks always-on resources (one row per
    resource per day of 24 hours) that idle-resource queries look for."""

    code: str
    name: str
    family: str
    usage: str  # usage type without the region prefix
    operation: str
    unit: str
    rate: float
    qty: float  # typical usage amount per daily row
    resource: str = ""
    servicecode: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    commit: str = ""
    steady: bool = False
    weight: float = 1.0
    global_: bool = False  # billed without a region (CloudFront, Route 53 domains, support)
    description: str = ""


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


_DOC = _load(CATALOG_PATH)
PAYERS: list[tuple[str, str]] = [(payer, name) for payer, name in _DOC["payers"]]
# (account id, name, payer index)
LINKED_ACCOUNTS: list[tuple[str, str, int]] = [
    (acct, name, payer) for acct, name, payer in _DOC["linked_accounts"]
]
REGIONS: list[Region] = [Region(**region) for region in _DOC["regions"]]
PROFILES: list[Profile] = [Profile(**profile) for profile in _DOC["profiles"]]
del _DOC
