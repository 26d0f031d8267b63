"""One generated chunk of a bill, and its three shapes: legacy CUR, CUR 2.0 and FOCUS 1.0 Arrow tables.

The generator (``costgen``) produces one neutral ``Chunk`` in legacy-CUR column names; this module only
renames, nests and derives, so all three formats describe exactly the same charges. FOCUS derives the
most: its columns are built in groups (costs, charge kinds, commitments) from the row masks of
:class:`_Kinds`, and the plain renames are tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Chunk", "Vocab", "to_cur", "to_cur2", "to_focus"]

_ARROW = {"string": pa.string(), "double": pa.float64(), "timestamp": pa.timestamp("us")}


class Vocab:
    """Strings of one column, interned: rows hold int32 indices, written as a dictionary array."""

    def __init__(self) -> None:
        self.values: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def id(self, value: str) -> int:
        if value not in self._index:
            self._index[value] = len(self.values)
            self.values.append(value)
        return self._index[value]

    def ids(self, values: list[str]) -> np.ndarray:
        return np.array([self.id(v) for v in values], dtype=np.int32)


@dataclass
class Chunk:
    """One row group: string columns as vocabulary indices, numbers as arrays, plus the vocabularies."""

    strings: dict[str, np.ndarray]
    numbers: dict[str, np.ndarray]
    vocab: dict[str, Vocab]

    def __len__(self) -> int:
        return len(self.numbers["line_item_unblended_cost"])

    def text(self, name: str) -> pa.Array:
        """A string column as a dictionary array (an all-empty one when the chunk lacks it)."""
        idx = self.strings.get(name, np.zeros(len(self), np.int32))
        values = self.vocab[name].values if name in self.vocab else [""]
        return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(values, pa.string()))

    def take(self, rows: np.ndarray) -> Chunk:
        return Chunk(
            {k: v[rows] for k, v in self.strings.items()},
            {k: v[rows] for k, v in self.numbers.items()},
            self.vocab,
        )

    def has(self, column: str, value: str) -> np.ndarray:
        """Rows whose string ``column`` equals ``value``."""
        index = self.vocab[column]._index.get(value, -1) if column in self.vocab else -1
        return self.strings.get(column, np.zeros(len(self), np.int32)) == index

    def number(self, name: str) -> np.ndarray:
        return self.numbers.get(name, np.zeros(len(self)))


def _column(chunk: Chunk, name: str, type_: str) -> pa.Array:
    if type_ == "string":
        return chunk.text(name)
    if type_ == "timestamp":
        if name in chunk.numbers:
            return pa.array(chunk.numbers[name].astype("datetime64[us]"), pa.timestamp("us"))
        return pa.nulls(len(chunk), pa.timestamp("us"))
    return pa.array(chunk.number(name).astype(np.float64), pa.float64())


def to_cur(chunk: Chunk, schema: list[dict[str, str]]) -> pa.Table:
    """Legacy CUR: the chunk's own columns, in the schema's order and types."""
    return pa.table({c["name"]: _column(chunk, c["name"], c["type"]) for c in schema})


def _map(chunk: Chunk, columns: dict[str, str]) -> pa.Array:
    """map<string,string> of the non-empty ``columns`` (key -> chunk column), built without a Python loop
    over rows: a row-major boolean mask of the index matrix gives entries in map order."""
    names = list(columns)
    idx = np.stack([chunk.strings.get(columns[k], np.zeros(len(chunk), np.int32)) for k in names], axis=1)
    present = idx != 0
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    key_index = np.broadcast_to(np.arange(len(names)), idx.shape)[present]
    values: list[list[str]] = []
    shift: list[int] = []
    for k in names:
        vocab = chunk.vocab.get(columns[k])
        shift.append(sum(len(v) for v in values))
        values.append(vocab.values if vocab else [""])
    flat = pa.array([v for vs in values for v in vs], pa.string())
    items = pc.take(flat, pa.array((idx + np.array(shift, np.int32))[present]))
    keys = pc.take(pa.array(names, pa.string()), pa.array(key_index))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)


def to_cur2(chunk: Chunk, schema: list[dict[str, str]]) -> pa.Table:
    """CUR 2.0: flat columns where CUR 2.0 keeps them; product attributes and tags as maps."""
    product = {k[len("product_") :]: k for k in chunk.strings if k.startswith("product_")}
    tags = {k[len("resource_tags_") :]: k for k in chunk.strings if k.startswith("resource_tags_user_")}
    out: dict[str, pa.Array] = {}
    for c in schema:
        name, type_ = c["name"], c["type"]
        if name == "product":
            out[name] = _map(chunk, product)
        elif name == "resource_tags":
            out[name] = _map(chunk, tags)
        elif type_.startswith("map<"):
            value = pa.float64() if type_.endswith("double>") else pa.string()
            out[name] = pa.array([[]] * len(chunk), pa.map_(pa.string(), value))
        elif name == "billing_period":
            out[name] = pc.strftime(_column(chunk, "bill_billing_period_start_date", "timestamp"), "%Y-%m")
        else:
            out[name] = _column(chunk, name, type_)
    return pa.table(out)


_CATEGORIES = {
    "Compute": (
        "AmazonEC2",
        "AWSLambda",
        "AmazonECS",
        "AmazonEKS",
        "ElasticMapReduce",
        "AmazonAppStream",
        "AmazonWorkSpaces",
        "CodeBuild",
    ),
    "Storage": ("AmazonS3", "AmazonGlacier", "AmazonEFS", "AmazonFSx", "AWSBackup"),
    "Databases": (
        "AmazonRDS",
        "AmazonDynamoDB",
        "AmazonElastiCache",
        "AmazonRedshift",
        "AmazonDocDB",
        "AmazonDAX",
        "AmazonES",
    ),
    "Networking": (
        "AmazonVPC",
        "AWSELB",
        "AmazonCloudFront",
        "AWSDirectConnect",
        "AmazonRoute53",
        "AmazonApiGateway",
        "AWSNetworkFirewall",
    ),
    "AI and Machine Learning": ("AmazonSageMaker", "AmazonRekognition", "AmazonTextract"),
    "Management and Governance": ("AmazonCloudWatch", "AWSCloudTrail", "AWSConfig"),
    "Security": ("AmazonGuardDuty", "AmazonCognito", "awswaf", "AWSShield"),
}


def _pick(n: int, cases: list[tuple[np.ndarray, str]], default: str | None) -> pa.Array:
    """A string column from (mask, value) cases, first match wins; ``None`` becomes null."""
    labels = [default] + [v for _, v in cases]
    choice = np.zeros(n, np.int32)
    for i, (mask, _) in reversed(list(enumerate(cases, start=1))):
        choice[mask] = i
    return pc.cast(
        pa.DictionaryArray.from_arrays(pa.array(choice), pa.array(labels, pa.string())), pa.string()
    )


def _nullable(chunk: Chunk, name: str) -> pa.Array:
    text = pc.cast(chunk.text(name), pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


# FOCUS columns that are a CUR column as it is (null where empty), a timestamp, or one value for every row.
_FOCUS_TEXT = {
    "AvailabilityZone": "line_item_availability_zone",
    "BillingAccountId": "bill_payer_account_id",
    "BillingAccountName": "bill_payer_account_name",
    "ChargeDescription": "line_item_line_item_description",
    "PricingUnit": "pricing_unit",
    "RegionId": "product_region",
    "RegionName": "product_location",
    "ResourceId": "line_item_resource_id",
    "ResourceName": "resource_tags_user_name",
    "ResourceType": "product_product_family",
    "ServiceName": "product_product_name",
    "SkuId": "product_usagetype",
    "SkuPriceId": "pricing_public_on_demand_rate",
    "SubAccountId": "line_item_usage_account_id",
    "SubAccountName": "line_item_usage_account_name",
}
_FOCUS_TIMES = {
    "BillingPeriodEnd": "bill_billing_period_end_date",
    "BillingPeriodStart": "bill_billing_period_start_date",
    "ChargePeriodEnd": "line_item_usage_end_date",
    "ChargePeriodStart": "line_item_usage_start_date",
}
_FOCUS_CONSTANTS = {
    "BillingCurrency": "USD",
    "InvoiceIssuerName": "Amazon Web Services, Inc.",
    "ProviderName": "AWS",
}


@dataclass(frozen=True)
class _Kinds:
    """Row masks of the line-item types FOCUS tells apart, and of the two commitment kinds."""

    usage: np.ndarray
    covered: np.ndarray  # SavingsPlanCoveredUsage
    discounted: np.ndarray  # DiscountedUsage (a reservation)
    sp_fee: np.ndarray
    ri_fee: np.ndarray
    fee: np.ndarray
    tax: np.ndarray
    refund: np.ndarray
    sp_row: np.ndarray  # a Savings Plan row: covered usage or the plan's fee
    ri_row: np.ndarray  # a reservation row: discounted usage, its fee, or its upfront Fee

    @classmethod
    def of(cls, chunk: Chunk) -> _Kinds:
        is_ = functools.partial(chunk.has, "line_item_line_item_type")
        covered, discounted, fee = is_("SavingsPlanCoveredUsage"), is_("DiscountedUsage"), is_("Fee")
        sp_fee, ri_fee = is_("SavingsPlanRecurringFee"), is_("RIFee")
        return cls(
            is_("Usage"), covered, discounted, sp_fee, ri_fee, fee, is_("Tax"), is_("Refund"),
            sp_row=covered | sp_fee,
            ri_row=discounted | ri_fee | (fee & ~chunk.has("reservation_reservation_a_r_n", "")),
        )  # fmt: skip

    @property
    def in_use(self) -> np.ndarray:
        return self.usage | self.covered | self.discounted


def to_focus(chunk: Chunk, schema: list[dict[str, str]]) -> pa.Table:
    """FOCUS 1.0 from the same charges: commitment coverage moves from negation rows into
    ``EffectiveCost`` (covered usage is billed 0; the plan's fee carries the bill)."""
    n, kinds = len(chunk), _Kinds.of(chunk)
    cols: dict[str, pa.Array] = {
        **{name: _nullable(chunk, cur) for name, cur in _FOCUS_TEXT.items()},
        **{name: _column(chunk, cur, "timestamp") for name, cur in _FOCUS_TIMES.items()},
        **{name: _pick(n, [], value) for name, value in _FOCUS_CONSTANTS.items()},
        **_focus_costs(chunk, kinds),
        **_focus_charges(chunk, kinds),
        **_focus_commitments(chunk, kinds),
        "ServiceCategory": _service_category(chunk),
        "PublisherName": pc.if_else(
            pa.array(chunk.has("bill_billing_entity", "AWS Marketplace")),
            _nullable(chunk, "product_product_name"),
            pa.scalar("Amazon Web Services, Inc."),
        ),
        "Tags": _map(
            chunk,
            {
                k[len("resource_tags_user_") :]: k
                for k in chunk.strings
                if k.startswith("resource_tags_user_")
            },
        ),
    }
    return pa.table(
        {c["name"]: cols[c["name"]].cast(_ARROW.get(c["type"], cols[c["name"]].type)) for c in schema}
    )


def _focus_costs(chunk: Chunk, kinds: _Kinds) -> dict[str, pa.Array]:
    """Billed, list, contracted and effective cost, and the quantities they are for. Covered usage is
    billed 0 (the plan's fee bills it) but lists at on-demand; a commitment's fee is effectively what went
    unused; an upfront reservation Fee is amortised into the months, so effectively 0 here."""
    n, k = len(chunk), kinds
    unblended = chunk.number("line_item_unblended_cost")
    effective = np.select(
        [k.covered, k.discounted, k.sp_fee, k.ri_fee, k.fee & k.ri_row],
        [
            chunk.number("savings_plan_savings_plan_effective_cost"),
            chunk.number("reservation_effective_cost"),
            chunk.number("savings_plan_total_commitment_to_date")
            - chunk.number("savings_plan_used_commitment"),
            chunk.number("reservation_unused_amortized_upfront_fee_for_billing_period")
            + chunk.number("reservation_unused_recurring_fee"),
            np.zeros(n),
        ],
        unblended,
    )
    billed = np.where(k.covered, 0.0, unblended)
    listed = np.where(k.in_use, chunk.number("pricing_public_on_demand_cost"), billed)
    qty = chunk.number("line_item_usage_amount")
    unit_price = np.divide(listed, qty, out=np.zeros(n), where=k.in_use & (qty > 0))
    return {
        "BilledCost": pa.array(billed),
        "ConsumedQuantity": pa.array(np.where(k.in_use, qty, np.nan), from_pandas=True),
        "ConsumedUnit": pc.if_else(
            pa.array(k.in_use), _nullable(chunk, "pricing_unit"), pa.scalar(None, pa.string())
        ),
        "ContractedCost": pa.array(listed),
        "ContractedUnitPrice": pa.array(unit_price),
        "EffectiveCost": pa.array(effective),
        "ListCost": pa.array(listed),
        "ListUnitPrice": pa.array(unit_price),
        "PricingQuantity": pa.array(qty),
    }


def _focus_charges(chunk: Chunk, kinds: _Kinds) -> dict[str, pa.Array]:
    """What kind of charge each row is (FOCUS's Charge* and PricingCategory columns)."""
    n, k = len(chunk), kinds
    fees = k.sp_fee | k.ri_fee
    on_demand = k.in_use & chunk.has("pricing_term", "")
    return {
        "ChargeCategory": _pick(
            n,
            [(k.in_use, "Usage"), (fees | k.fee, "Purchase"), (k.tax, "Tax"), (k.refund, "Adjustment")],
            "Credit",
        ),
        "ChargeClass": _pick(n, [(k.refund, "Correction")], None),
        "ChargeFrequency": _pick(n, [(k.in_use, "Usage-Based"), (fees, "Recurring")], "One-Time"),
        "PricingCategory": _pick(
            n,
            [(k.covered | k.discounted, "Committed"), (on_demand, "Dynamic"), (k.usage, "Standard")],
            "Other",
        ),
    }


def _focus_commitments(chunk: Chunk, kinds: _Kinds) -> dict[str, pa.Array]:
    """Which Savings Plan or reservation a row uses or pays for, and whether it was used."""
    n, k = len(chunk), kinds
    commitment = pc.if_else(
        pa.array(k.sp_row),
        _nullable(chunk, "savings_plan_savings_plan_a_r_n"),
        pc.if_else(
            pa.array(k.ri_row),
            _nullable(chunk, "reservation_reservation_a_r_n"),
            pa.scalar(None, pa.string()),
        ),
    )
    return {
        "CommitmentDiscountCategory": _pick(n, [(k.sp_row, "Spend"), (k.ri_row, "Usage")], None),
        "CommitmentDiscountId": commitment,
        "CommitmentDiscountName": commitment,
        "CommitmentDiscountStatus": _pick(
            n, [(k.covered | k.discounted, "Used"), (k.sp_fee | k.ri_fee, "Unused")], None
        ),
        "CommitmentDiscountType": _pick(
            n, [(k.sp_row, "Savings Plan"), (k.ri_row, "Reserved Instance")], None
        ),
    }


def _service_category(chunk: Chunk) -> pa.Array:
    """FOCUS's ServiceCategory of each row's product code (``Other`` for codes not in the table)."""
    category = {code: name for name, codes in _CATEGORIES.items() for code in codes}
    codes = chunk.vocab["line_item_product_code"].values
    return pc.take(
        pa.array([category.get(c, "Other") for c in codes]), pa.array(chunk.strings["line_item_product_code"])
    )
