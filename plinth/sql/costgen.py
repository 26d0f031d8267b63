"""Synthetic AWS cost data — legacy CUR, CUR 2.0 and FOCUS 1.0 — written as Parquet.

``generate(kind, out, rows=..., months=..., seed=...)`` writes ``out/<table>/part-00000.parquet`` with the
columns of ``plinth/sql/schemas/<kind>.json`` and returns the table folder. The data is one month at a
time, vectorised (numpy indices into per-column vocabularies, written as dictionary arrays), in row groups
of at most ``CHUNK_ROWS``, so memory is bounded by one row group and 10M rows take a minute or two.

The bill is built the way AWS builds one, so costs add up and can be checked from the raw columns:

- ``Usage``: unblended = public on-demand = amortised cost.
- ``SavingsPlanCoveredUsage``: unblended = on-demand equivalent, ``savings_plan_savings_plan_effective_cost``
  = the discounted rate; each has a ``SavingsPlanNegation`` twin (same resource and day) with
  ``-unblended``. One ``SavingsPlanRecurringFee`` per plan and month bills the commitment:
  ``total_commitment_to_date`` = unblended, ``used_commitment`` = the month's covered effective cost.
- ``DiscountedUsage``: unblended 0, ``reservation_effective_cost`` = amortised RI rate. One ``RIFee`` per
  reservation and month: recurring fee (unblended) + ``amortized_upfront_fee`` = month's RI cost
  = used effective cost + ``unused_recurring_fee`` + ``unused_amortized_upfront_fee``; the upfront
  ``Fee`` row appears once, in the first month.
- ``Tax``, ``Fee`` (Premium Support, Marketplace) >= 0; ``Credit``, ``Refund``, ``EdpDiscount`` <= 0.

Dates cover ``months`` whole months ending with the month before ``start`` (default: today), with the
``year``/``month`` partition strings Athena's CUR integration writes ('2024', '7').
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq

from plinth.sql import cost_catalog_values as cv
from plinth.sql.cost_tables import Chunk, Vocab, to_cur, to_cur2, to_focus
from plinth.sql.types import MAIN_TABLES

__all__ = ["CHUNK_ROWS", "Bill", "generate", "load_schema", "month_starts"]

CHUNK_ROWS = 1_000_000
SCHEMA_DIR = Path(__file__).with_name("schemas")
Kind = Literal["cur", "cur2", "focus"]
_K = 6  # resources per (resource kind, account)
_SP_SHARE, _RI_SHARE = 0.3, 0.25  # of eligible usage rows covered by a Savings Plan / a reservation
_RI_CODES = ["AmazonEC2", "AmazonRDS", "AmazonElastiCache", "AmazonRedshift", "AmazonES"]
_OTHER_TYPES = ["Tax", "Tax", "Credit", "Refund", "EdpDiscount", "Fee", "Fee", "Credit"]


def load_schema(kind: str) -> list[dict[str, str]]:
    """The ``columns`` list of ``schemas/<kind>.json`` (name, Athena type, source)."""
    doc: dict[str, Any] = json.loads((SCHEMA_DIR / f"{kind}.json").read_text())
    return list(doc["columns"])


def month_starts(months: int, start: date | None) -> list[np.datetime64]:
    """First days of the ``months`` months before ``start``'s month, oldest first, plus the end bound."""
    anchor = np.datetime64((start or date.today()).replace(day=1), "M")
    return [(anchor - months + i).astype("datetime64[D]") for i in range(months + 1)]


def generate(kind: Kind, out: Path, *, rows: int, months: int, seed: int, start: date | None = None) -> Path:
    """Write ``rows`` synthetic rows of ``kind`` to ``out/<table>/part-00000.parquet``; return the folder.

    Deterministic for a given (rows, months, seed, start). FOCUS has no negation rows (commitment
    coverage is expressed by ``EffectiveCost``), so its usage rows take their place.
    """
    if months < 1 or rows < 200 * months:
        raise ValueError(f"need months >= 1 and rows >= 200 per month, got rows={rows} months={months}")
    folder = Path(out) / MAIN_TABLES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000.parquet"
    schema = load_schema(kind)
    bill = Bill(seed, months, start, negations=kind != "focus")
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in bill.chunks(rows):
            table = {"cur": to_cur, "cur2": to_cur2, "focus": to_focus}[kind](chunk, schema)
            if writer is None:
                # Snappy, as AWS Data Exports write (*.snappy.parquet); DuckDB scans it ~2x faster than zstd.
                # store_schema=False: readers see plain strings, not the dictionary arrays we write.
                writer = pq.ParquetWriter(path, table.schema, compression="snappy", store_schema=False)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    return folder


def _hex(*parts: object, n: int = 17) -> str:
    """A stable hex id for a resource: the same parts give the same id in every run and process."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=32).hexdigest()[:n]


_RESOURCE_FORMATS = {
    "instance": "i-{h}",
    "volume": "vol-{h}",
    "snapshot": "arn:aws:ec2:{r}:{a}:snapshot/snap-{h}",
    "eip": "arn:aws:ec2:{r}:{a}:elastic-ip/eipalloc-{h}",
    "natgateway": "arn:aws:ec2:{r}:{a}:natgateway/nat-{h}",
    "elb": "arn:aws:elasticloadbalancing:{r}:{a}:loadbalancer/app/{name}/{h}",
    "vpc": "vpc-{h}",
    "vpce": "arn:aws:ec2:{r}:{a}:vpc-endpoint/vpce-{h}",
    "tgw": "arn:aws:ec2:{r}:{a}:transit-gateway-attachment/tgw-attach-{h}",
    "nfw": "arn:aws:network-firewall:{r}:{a}:firewall/{name}",
    "bucket": "{name}-{h6}",
    "rdsdb": "arn:aws:rds:{r}:{a}:db:{name}",
    "auroracluster": "arn:aws:rds:{r}:{a}:cluster:cluster-{h}",
    "lambda": "arn:aws:lambda:{r}:{a}:function:{name}",
    "ecstask": "arn:aws:ecs:{r}:{a}:task/{name}/{h}",
    "eks": "arn:aws:eks:{r}:{a}:cluster/{name}",
}


class Bill:
    """Draws a bill month by month. All vocabulary and lookup tables are built once, in ``__init__``;
    ``chunks`` then only indexes them with numpy."""

    def __init__(self, seed: int, months: int, start: date | None, *, negations: bool = True) -> None:
        self.rng = np.random.default_rng(seed)
        self.bounds = month_starts(months, start)
        self.negations = negations
        self.vocab: dict[str, Vocab] = {}
        self.p = cv.PROFILES
        self._profile_tables()
        self._resource_tables()
        self._commitments()

    def v(self, column: str) -> Vocab:
        return self.vocab.setdefault(column, Vocab())

    def _profile_tables(self) -> None:
        p, regions = self.p, cv.REGIONS
        self.weight = np.array([x.weight for x in p]) / sum(x.weight for x in p)
        self.qty = np.array([x.qty for x in p])
        self.hourly = np.array([x.unit.lower() in ("hrs", "hours") and x.qty == 24 for x in p])
        self.sp_ok = np.array(["sp" in x.commit for x in p])
        self.ri_ok = np.array(["ri" in x.commit for x in p])
        self.globl = np.array([x.global_ for x in p])
        mult = np.array([1.0, 1.0, 1.06, 1.12, 1.18, 1.2, 1.0])  # last: global
        self.rate = np.array([x.rate for x in p])[:, None] * mult[None, : len(regions) + 1]
        attrs = sorted({k for x in p for k in x.attrs} | {"location_type"})
        self.by_profile: dict[str, np.ndarray] = {
            "line_item_product_code": self.v("line_item_product_code").ids([x.code for x in p]),
            "product_product_name": self.v("product_product_name").ids([x.name for x in p]),
            "product_servicecode": self.v("product_servicecode").ids([x.servicecode or x.code for x in p]),
            "product_product_family": self.v("product_product_family").ids([x.family for x in p]),
            "line_item_operation": self.v("line_item_operation").ids([x.operation for x in p]),
            "pricing_unit": self.v("pricing_unit").ids([x.unit for x in p]),
        }
        for key in attrs:
            default = "AWS Region" if key == "location_type" else ""
            col = f"product_{key}"
            self.by_profile[col] = self.v(col).ids([x.attrs.get(key, default) for x in p])
        names = [r.name for r in regions] + ["Global"]
        self.by_region = {
            "product_region": self.v("product_region").ids([r.code for r in regions] + ["global"]),
            "product_location": self.v("product_location").ids(names),
        }
        ut, desc, rate_s = [], [], []
        for x in p:
            for ri, r in enumerate([*regions, None]):
                usage = (
                    x.usage
                    if r is None or x.usage.startswith(("USE1-", "USW2-"))
                    else f"{r.prefix}-{x.usage}"
                )
                ut.append(usage)
                price = x.rate * mult[ri]
                where = r.name if r else "Global"
                desc.append(x.description or f"${price:.4g} per {x.unit} for {x.usage} in {where}")
                rate_s.append(f"{price:.8g}")
        shape = (len(p), len(regions) + 1)
        self.usage_type = self.v("line_item_usage_type").ids(ut).reshape(shape)
        self.product_usagetype = self.v("product_usagetype").ids(ut).reshape(shape)
        self.description = self.v("line_item_line_item_description").ids(desc).reshape(shape)
        self.rate_text = self.v("pricing_public_on_demand_rate").ids(rate_s).reshape(shape)

    def _resource_tables(self) -> None:
        accounts, regions = cv.LINKED_ACCOUNTS, cv.REGIONS
        n_a = len(accounts)
        self.account_weight = 1.0 / np.arange(1, n_a + 1) ** 0.6
        self.account_weight /= self.account_weight.sum()
        self.payer_of = np.array([pi for _, _, pi in accounts])
        self.account_id = self.v("line_item_usage_account_id").ids([a for a, _, _ in accounts])
        self.account_name = self.v("line_item_usage_account_name").ids([n for _, n, _ in accounts])
        self.payer_id = self.v("bill_payer_account_id").ids([a for a, _ in cv.PAYERS])
        self.payer_name = self.v("bill_payer_account_name").ids([n for _, n in cv.PAYERS])
        rw = np.array([r.weight for r in regions])
        self.region_of = self.rng.choice(len(regions), size=(n_a, _K), p=rw / rw.sum())
        kinds = sorted({x.resource.split(":")[0] for x in self.p})
        self.kind_of = np.array([kinds.index(x.resource.split(":")[0]) for x in self.p])
        self.half = np.array([x.resource.endswith(":half") for x in self.p])
        apps = ["checkout", "search", "catalog", "analytics", "payments", "ml-platform"]
        ids = []
        for kind in kinds:
            for ai, (acct, name, _) in enumerate(accounts):
                for k in range(_K):
                    r = regions[self.region_of[ai, k]].code
                    label = f"{name}-{apps[k]}"
                    fmt = _RESOURCE_FORMATS.get(kind, "arn:aws:{kind}:{r}:{a}:{kind}/{name}")
                    h = _hex(kind, acct, k)
                    ids.append(
                        "" if not kind else fmt.format(h=h, h6=h[:6], r=r, a=acct, name=label, kind=kind)
                    )
        self.resource = self.v("line_item_resource_id").ids(ids).reshape(len(kinds), n_a, _K)
        az = [f"{regions[self.region_of[a, k]].code}{'abc'[k % 3]}" for a in range(n_a) for k in range(_K)]
        self.az = self.v("line_item_availability_zone").ids(az).reshape(n_a, _K)
        env = ["prod" if "prod" in n else "staging" if "staging" in n else "dev" for _, n, _ in accounts]
        tags = {
            "environment": lambda a, k: env[a],
            "application": lambda a, k: apps[k],
            "cost_center": lambda a, k: f"CC-{1000 + 10 * cv.LINKED_ACCOUNTS[a][2] + k % 3}",
            "team": lambda a, k: ["platform", "data", "web", "ml"][(a + k) % 4],
            "owner": lambda a, k: ["alice", "bob", "carol", "dan", "erin"][(a * 3 + k) % 5],
            "name": lambda a, k: f"{accounts[a][1]}-{apps[k]}-{k}",
        }
        self.tags = {
            f"resource_tags_user_{t}": self.v(f"resource_tags_user_{t}")
            .ids(["" if k == _K - 1 else f(a, k) for a in range(n_a) for k in range(_K)])
            .reshape(n_a, _K)
            for t, f in tags.items()
        }

    def _commitments(self) -> None:
        """Two Savings Plans and one reservation per RI-able service, per payer."""
        n_payers = len(cv.PAYERS)
        self.sp_owner = np.array(
            [
                next(i for i, a in enumerate(cv.LINKED_ACCOUNTS) if a[0] == cv.PAYERS[p][0])
                for p in range(n_payers)
                for _ in range(2)
            ]
        )
        self.sp_discount = np.tile([0.28, 0.4], n_payers)
        self.sp_util = self.rng.uniform(0.85, 0.99, size=2 * n_payers)
        sp_arn = [
            f"arn:aws:savingsplans::{cv.PAYERS[p][0]}:savingsplan/{_hex('sp', p, j, n=8)}-"
            f"{_hex('sp2', p, j, n=4)}"
            for p in range(n_payers)
            for j in range(2)
        ]
        self.sp_arn = self.v("savings_plan_savings_plan_a_r_n").ids(sp_arn)
        self.sp_type = self.v("savings_plan_offering_type").ids(
            ["ComputeSavingsPlans", "EC2InstanceSavingsPlans"] * n_payers
        )
        self.ri_profile = np.array(
            [
                next(i for i, x in enumerate(self.p) if x.code == c and "ri" in x.commit)
                for _ in range(n_payers)
                for c in _RI_CODES
            ]
        )
        self.ri_owner = self.sp_owner[::2].repeat(len(_RI_CODES))
        self.ri_util = self.rng.uniform(0.8, 0.98, size=len(self.ri_profile))
        ri_arn = [
            f"arn:aws:{'ec2' if c == 'AmazonEC2' else c[6:].lower()}:us-east-1:{cv.PAYERS[p][0]}:"
            f"reserved-instances/{_hex('ri', p, c, n=12)}"
            for p in range(n_payers)
            for c in _RI_CODES
        ]
        self.ri_arn = self.v("reservation_reservation_a_r_n").ids(ri_arn)
        self.code_ri = np.array([_RI_CODES.index(x.code) if x.code in _RI_CODES else 0 for x in self.p])

    # ---- rows -------------------------------------------------------------------------------------
    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Yield row groups month by month; commitment fees close each month."""
        n_months = len(self.bounds) - 1
        per_month = np.full(n_months, rows // n_months)
        per_month[: rows % n_months] += 1
        for m in range(n_months):
            fees = self._fee_count(m)
            usage_total = int(per_month[m]) - fees
            sp_used = np.zeros(len(self.sp_arn))
            ri_used = np.zeros(len(self.ri_arn))
            n_parts = -(-usage_total // CHUNK_ROWS)
            sizes = [usage_total // n_parts + (i < usage_total % n_parts) for i in range(n_parts)]
            for i, size in enumerate(sizes):
                chunk = self._usage_month_part(m, size, first_part=i == 0)
                covered = chunk.strings["line_item_line_item_type"] == self.v("line_item_line_item_type").id(
                    "SavingsPlanCoveredUsage"
                )
                sp_used += np.bincount(
                    chunk.numbers["_sp"],
                    weights=chunk.numbers["savings_plan_savings_plan_effective_cost"] * covered,
                    minlength=len(sp_used),
                )
                ri_used += np.bincount(
                    chunk.numbers["_ri"],
                    weights=chunk.numbers["reservation_effective_cost"],
                    minlength=len(ri_used),
                )
                if i == n_parts - 1:
                    chunk = _concat([chunk, self._fees(m, sp_used, ri_used)])
                yield chunk

    def _fee_count(self, m: int) -> int:
        return len(self.sp_arn) + len(self.ri_arn) * (2 if m == 0 else 1)

    def _usage_month_part(self, m: int, n: int, *, first_part: bool) -> Chunk:
        days = int((self.bounds[m + 1] - self.bounds[m]).astype(int))
        n_other = max(len(_OTHER_TYPES), n // 50)
        steady = self._steady(days, n // 5) if first_part else None
        n_steady = 0 if steady is None else len(steady[0])
        rest = n - n_other - n_steady
        p, a, k, day, covered = self._random_usage(rest, days)
        qty = self.qty[p] * self.rng.lognormal(0.0, 0.6, len(p))
        qty = np.where(self.hourly[p], np.minimum(qty, 24.0), qty)
        if steady is not None:
            sp_, sa, sk, sd = steady
            p, a, k, day = (np.concatenate(x) for x in ((p, sp_), (a, sa), (k, sk), (day, sd)))
            qty = np.concatenate([qty, self.qty[sp_]])
            covered = np.concatenate([covered, np.zeros(n_steady, bool)])
        usage = self._rows(m, p, a, k, day, qty)
        self._price(usage, covered)
        parts = [usage]
        if self.negations:
            parts.append(self._negations(usage.take(np.flatnonzero(covered))))
        parts.append(self._other(m, n_other, days))
        return _concat(parts)

    def _random_usage(self, total: int, days: int) -> tuple[np.ndarray, ...]:
        """``total`` rows counting negation twins: draw usage rows until covered ones (x2) fill it."""
        rng = self.rng
        p = rng.choice(len(self.p), size=total, p=self.weight)
        covered = self.sp_ok[p] & (rng.random(total) < _SP_SHARE)
        if self.negations:
            cost = np.cumsum(1 + covered)
            n = int(np.searchsorted(cost, total, side="right"))
            if n < total and (n == 0 or cost[n - 1] < total):
                covered[n] = False
                n += 1
            p, covered = p[:n], covered[:n]
        a = rng.choice(len(cv.LINKED_ACCOUNTS), size=len(p), p=self.account_weight)
        k = rng.integers(0, _K, size=len(p))
        k = np.where(self.half[p], k % (_K // 2), k)
        return p, a, k, rng.integers(0, days, size=len(p)), covered

    def _steady(self, days: int, budget: int) -> tuple[np.ndarray, ...] | None:
        """Always-on resources: one 24-hour row per day. Resource ``_K - 1`` (never in a ':half' pool)
        only idles, which is what the idle NAT/ELB/endpoint queries look for."""
        profiles = np.flatnonzero([x.steady for x in self.p])
        per = min(3, budget // max(1, days * len(profiles)))
        if per == 0:
            return None
        combos = [(p, a, k) for p in profiles for a, k in [(0, _K - 1), (1, 0), (2, _K - 1)][:per]]
        pa_, aa, ka = (np.repeat(np.array(c), days) for c in zip(*combos, strict=True))
        return pa_, aa, ka, np.tile(np.arange(days), len(combos))

    def _const(self, column: str, value: str, n: int) -> np.ndarray:
        return np.full(n, self.v(column).id(value), np.int32)

    def _rows(
        self, m: int, p: np.ndarray, a: np.ndarray, k: np.ndarray, day: np.ndarray, qty: np.ndarray
    ) -> Chunk:
        """Usage-shaped rows: product, place, resource, account, tags and dates; prices come later."""
        n, start = len(p), self.bounds[m]
        region = np.where(self.globl[p], len(cv.REGIONS), self.region_of[a, k])
        payer = self.payer_of[a]
        s = {col: table[p] for col, table in self.by_profile.items()}
        s |= {col: table[region] for col, table in self.by_region.items()}
        s |= {col: table[a, k] for col, table in self.tags.items()}
        s["line_item_usage_type"] = self.usage_type[p, region]
        s["product_usagetype"] = self.product_usagetype[p, region]
        s["line_item_line_item_description"] = self.description[p, region]
        s["pricing_public_on_demand_rate"] = self.rate_text[p, region]
        s["line_item_resource_id"] = self.resource[self.kind_of[p], a, k]
        s["line_item_availability_zone"] = np.where(self.globl[p], 0, self.az[a, k])
        s["line_item_usage_account_id"] = self.account_id[a]
        s["line_item_usage_account_name"] = self.account_name[a]
        s["bill_payer_account_id"] = self.payer_id[payer]
        s["bill_payer_account_name"] = self.payer_name[payer]
        invoices = self.v("bill_invoice_id").ids(
            [f"{2_000_000_000 + 97 * m + i}" for i in range(len(cv.PAYERS))]
        )
        s["bill_invoice_id"] = invoices[payer]
        stamp = str(start.astype("datetime64[M]"))
        s["year"] = self._const("year", stamp[:4], n)
        s["month"] = self._const("month", str(int(stamp[5:7])), n)
        for col, value in (
            ("bill_bill_type", "Anniversary"),
            ("bill_billing_entity", "AWS"),
            ("line_item_legal_entity", "Amazon Web Services, Inc."),
            ("line_item_currency_code", "USD"),
            ("line_item_line_item_type", "Usage"),
        ):
            s[col] = self._const(col, value, n)
        days = [str(start + d) for d in range(int((self.bounds[m + 1] - start).astype(int)) + 1)]
        intervals = self.v("identity_time_interval").ids(
            [f"{d0}T00:00:00Z/{d1}T00:00:00Z" for d0, d1 in zip(days, days[1:], strict=False)]
        )
        s["identity_time_interval"] = intervals[day]
        s["identity_line_item_id"] = self.v("identity_line_item_id").ids(
            [_hex("li", i, n=52) for i in range(64)]
        )[(p * 7 + a * 3 + k) % 64]
        usage_start = (start + day).astype("datetime64[us]")
        num = {
            "line_item_usage_amount": qty,
            "line_item_usage_start_date": usage_start,
            "line_item_usage_end_date": usage_start + np.timedelta64(1, "D"),
            "bill_billing_period_start_date": np.full(n, start.astype("datetime64[us]")),
            "bill_billing_period_end_date": np.full(n, self.bounds[m + 1].astype("datetime64[us]")),
            "line_item_unblended_cost": np.zeros(n),
            "_p": p,
            "_region": region,
            "_sp": payer * 2 + self.rng.integers(0, 2, n),
            "_ri": payer * len(_RI_CODES) + self.code_ri[p],
        }
        return Chunk(s, num, self.vocab)

    def _set(self, chunk: Chunk, column: str, mask: np.ndarray, ids: np.ndarray | int) -> None:
        arr = chunk.strings.setdefault(column, np.zeros(len(chunk), np.int32))
        arr[mask] = ids[mask] if isinstance(ids, np.ndarray) else ids

    def _price(self, c: Chunk, covered: np.ndarray) -> None:
        """On-demand cost for every row, then Savings Plan and reservation coverage on some."""
        n, num, rng = len(c), c.numbers, self.rng
        p, sp = num["_p"], num["_sp"]
        od = num["line_item_usage_amount"] * self.rate[p, num["_region"]]
        discounted = self.ri_ok[p] & ~covered & (rng.random(n) < _RI_SHARE)
        num["pricing_public_on_demand_cost"] = od
        num["line_item_unblended_cost"] = np.where(discounted, 0.0, od)
        num["line_item_blended_cost"] = num["line_item_unblended_cost"]
        num["line_item_normalized_usage_amount"] = num["line_item_usage_amount"] * np.where(
            self.hourly[p], 4.0, 1.0
        )
        num["savings_plan_savings_plan_effective_cost"] = np.where(
            covered, od * (1 - self.sp_discount[sp]), 0.0
        )
        num["savings_plan_savings_plan_rate"] = np.where(
            covered, self.rate[p, num["_region"]] * (1 - self.sp_discount[sp]), 0.0
        )
        num["reservation_effective_cost"] = np.where(discounted, od * 0.62, 0.0)
        c.strings["line_item_unblended_rate"] = c.strings["pricing_public_on_demand_rate"]
        self.vocab["line_item_unblended_rate"] = self.vocab["pricing_public_on_demand_rate"]
        types = self.v("line_item_line_item_type")
        self._set(c, "line_item_line_item_type", covered, types.id("SavingsPlanCoveredUsage"))
        self._set(c, "line_item_line_item_type", discounted, types.id("DiscountedUsage"))
        spot = np.array([x.usage.startswith("SpotUsage") for x in self.p])[p]
        self._set(c, "pricing_term", ~spot, self.v("pricing_term").id("OnDemand"))
        self._set(c, "pricing_term", discounted, self.v("pricing_term").id("Reserved"))
        self._sp_columns(c, covered)
        self._ri_columns(c, discounted)

    def _sp_columns(self, c: Chunk, mask: np.ndarray) -> None:
        sp = c.numbers["_sp"]
        self._set(c, "savings_plan_savings_plan_a_r_n", mask, self.sp_arn[sp])
        self._set(c, "savings_plan_offering_type", mask, self.sp_type[sp])
        for col, value in (
            ("savings_plan_payment_option", "No Upfront"),
            ("savings_plan_purchase_term", "1yr"),
            ("savings_plan_start_time", "2025-01-01T00:00:00.000Z"),
            ("savings_plan_end_time", "2031-01-01T00:00:00.000Z"),
        ):
            self._set(c, col, mask, self.v(col).id(value))
        region = self.v("savings_plan_region").ids(["", "US East (N. Virginia)"])[sp % 2]
        self._set(c, "savings_plan_region", mask, region)

    def _ri_columns(self, c: Chunk, mask: np.ndarray) -> None:
        self._set(c, "reservation_reservation_a_r_n", mask, self.ri_arn[c.numbers["_ri"]])
        for col, value in (
            ("pricing_offering_class", "standard"),
            ("pricing_lease_contract_length", "1yr"),
            ("pricing_purchase_option", "Partial Upfront"),
            ("reservation_start_time", "2025-06-01T00:00:00.000Z"),
            ("reservation_end_time", "2031-06-01T00:00:00.000Z"),
            ("reservation_modification_status", "Original"),
            ("reservation_subscription_id", "9318205732"),
        ):
            self._set(c, col, mask, self.v(col).id(value))

    def _negations(self, covered: Chunk) -> Chunk:
        """Each covered row's twin that cancels its on-demand unblended cost."""
        neg = covered.take(np.arange(len(covered)))
        n = len(neg)
        neg.strings["line_item_line_item_type"] = self._const(
            "line_item_line_item_type", "SavingsPlanNegation", n
        )
        neg.strings["line_item_line_item_description"] = self._const(
            "line_item_line_item_description", "SavingsPlanNegation used by AccountId and UsageSku", n
        )
        for col in ("line_item_unblended_cost", "line_item_blended_cost"):
            neg.numbers[col] = -neg.numbers[col]
        for col in ("pricing_public_on_demand_cost", "savings_plan_savings_plan_effective_cost"):
            neg.numbers[col] = np.zeros(n)
        return neg

    def _other(self, m: int, n: int, days: int) -> Chunk:
        """Tax, credits, refunds, EDP discounts and fees (Premium Support, Marketplace)."""
        rng = self.rng
        kinds = np.resize(np.arange(len(_OTHER_TYPES)), n)
        p = rng.choice(len(self.p), size=n, p=self.weight)
        a = rng.choice(len(cv.LINKED_ACCOUNTS), size=n, p=self.account_weight)
        c = self._rows(
            m, p, a, np.zeros(n, int), np.where(kinds < 2, 0, rng.integers(0, days, n)), np.zeros(n)
        )
        names = np.array(_OTHER_TYPES)[kinds]
        sign = np.where(np.isin(names, ["Credit", "Refund", "EdpDiscount"]), -1.0, 1.0)
        c.numbers["line_item_unblended_cost"] = sign * rng.uniform(1.0, 250.0, n).round(2)
        c.numbers["line_item_blended_cost"] = c.numbers["line_item_unblended_cost"]
        c.numbers["pricing_public_on_demand_cost"] = np.zeros(n)
        c.strings["line_item_line_item_type"] = self.v("line_item_line_item_type").ids(list(names))
        for col in ("line_item_resource_id", "line_item_usage_type", "line_item_availability_zone"):
            c.strings[col] = np.zeros(n, np.int32)
        desc = {
            "Tax": "Tax for product code",
            "Credit": "AWS Activate Credits",
            "Refund": "Refund for overcharged usage",
            "EdpDiscount": "Enterprise Program Discount",
            "Fee": "AWS Support (Business)",
        }
        text = [desc[t] for t in names]
        text = [
            ("MAP 2.0 Credit (_MPE38911)" if t == "Credit" and i % 2 else d)
            for i, (t, d) in enumerate(zip(names, text, strict=True))
        ]
        c.strings["line_item_line_item_description"] = self.v("line_item_line_item_description").ids(text)
        support = (names == "Fee") & (np.arange(n) % 2 == 0)
        market = (names == "Fee") & ~support
        for col, sup, mkt in (
            ("line_item_product_code", "OCBPremiumSupport", "prod-7h2dz4x8hq"),
            ("product_product_name", "AWS Premium Support", "Datadog Pro (Pay-As-You-Go)"),
            ("product_servicecode", "OCBPremiumSupport", "prod-7h2dz4x8hq"),
            ("product_product_family", "", ""),
            ("bill_billing_entity", "AWS", "AWS Marketplace"),
            ("line_item_line_item_description", "AWS Support (Business)", "Datadog Pro"),
        ):
            self._set(c, col, support, self.v(col).id(sup))
            self._set(c, col, market, self.v(col).id(mkt))
        return c

    def _fees(self, m: int, sp_used: np.ndarray, ri_used: np.ndarray) -> Chunk:
        """Monthly commitment rows, sized so used + unused = what the commitment costs."""
        hours = float((self.bounds[m + 1] - self.bounds[m]).astype(int) * 24)
        n_sp, n_ri = len(sp_used), len(ri_used)
        sp_cost = np.where(sp_used > 0, sp_used / self.sp_util, 100.0)
        sp = self._rows(
            m,
            np.full(n_sp, self.ri_profile[0]),
            self.sp_owner,
            np.zeros(n_sp, int),
            np.zeros(n_sp, int),
            np.full(n_sp, hours),
        )
        sp.numbers["_sp"] = np.arange(n_sp)
        for col, value in (
            ("line_item_product_code", "ComputeSavingsPlans"),
            ("product_product_name", "Savings Plans for AWS Compute usage"),
            ("product_servicecode", "ComputeSavingsPlans"),
            ("product_product_family", ""),
            ("line_item_usage_type", "ComputeSP:1yrNoUpfront"),
            ("line_item_operation", ""),
            ("line_item_resource_id", ""),
            ("line_item_line_item_type", "SavingsPlanRecurringFee"),
            ("line_item_line_item_description", "1 year No Upfront Compute Savings Plan"),
            ("line_item_availability_zone", ""),
        ):
            sp.strings[col] = self._const(col, value, n_sp)
        self._sp_columns(sp, np.ones(n_sp, bool))
        sp.numbers |= {
            "line_item_unblended_cost": sp_cost,
            "line_item_blended_cost": sp_cost,
            "savings_plan_total_commitment_to_date": sp_cost,
            "savings_plan_used_commitment": sp_used,
            "savings_plan_recurring_commitment_for_billing_period": sp_cost,
        }
        ri = self._ri_fees(m, ri_used, hours)
        parts = [sp, ri]
        if m == 0:
            upfront = ri.take(np.arange(n_ri))
            upfront.strings["line_item_line_item_type"] = self._const("line_item_line_item_type", "Fee", n_ri)
            cost = upfront.numbers["reservation_amortized_upfront_fee_for_billing_period"] * 12
            upfront.numbers = {k: v for k, v in upfront.numbers.items() if not k.startswith("reservation_")}
            upfront.numbers |= {
                "line_item_unblended_cost": cost,
                "line_item_blended_cost": cost,
                "line_item_usage_amount": np.full(n_ri, 2.0),
            }
            parts.append(upfront)
        return _concat(parts)

    def _ri_fees(self, m: int, used: np.ndarray, hours: float) -> Chunk:
        n = len(used)
        util = np.where(used > 0, self.ri_util, 0.0)
        cost = np.where(used > 0, used / np.maximum(util, 1e-9), 50.0)
        qty = np.full(n, 2 * hours)  # two reservations per lease
        c = self._rows(m, self.ri_profile, self.ri_owner, np.zeros(n, int), np.zeros(n, int), qty)
        c.numbers["_ri"] = np.arange(n)
        heavy = [f"HeavyUsage:{self.p[i].attrs.get('instance_type', 'db')}" for i in self.ri_profile]
        c.strings["line_item_usage_type"] = self.v("line_item_usage_type").ids(heavy)
        c.strings["line_item_line_item_type"] = self._const("line_item_line_item_type", "RIFee", n)
        c.strings["line_item_line_item_description"] = self.v("line_item_line_item_description").ids(
            [
                f"USD {x / (2 * hours):.4f} hourly fee per reserved {self.p[i].code} instance"
                for x, i in zip(cost * 0.6, self.ri_profile, strict=True)
            ]
        )
        c.strings["line_item_resource_id"] = np.zeros(n, np.int32)
        c.strings["pricing_term"] = self._const("pricing_term", "Reserved", n)
        self._ri_columns(c, np.ones(n, bool))
        c.strings["reservation_number_of_reservations"] = self._const(
            "reservation_number_of_reservations", "2", n
        )
        c.strings["reservation_total_reserved_units"] = self.v("reservation_total_reserved_units").ids(
            [f"{q:.0f}" for q in qty]
        )
        recurring, upfront = cost * 0.6, cost * 0.4
        c.numbers |= {
            "line_item_unblended_cost": recurring,
            "line_item_blended_cost": recurring,
            "reservation_amortized_upfront_fee_for_billing_period": upfront,
            "reservation_unused_recurring_fee": recurring * (1 - util),
            "reservation_unused_amortized_upfront_fee_for_billing_period": upfront * (1 - util),
            "reservation_unused_quantity": qty * (1 - util),
            "reservation_unused_normalized_unit_quantity": qty * (1 - util) * 4,
        }
        return c


def _concat(parts: list[Chunk]) -> Chunk:
    """Stack chunks that share vocabularies; a column one part lacks is empty/zero there."""
    strings = {k for c in parts for k in c.strings}
    numbers = {k for c in parts for k in c.numbers}

    def column(c: Chunk, k: str, store: dict[str, np.ndarray], like: np.ndarray) -> np.ndarray:
        return store[k] if k in store else np.zeros(len(c), like.dtype)

    s_like = {k: next(c.strings[k] for c in parts if k in c.strings) for k in strings}
    n_like = {k: next(c.numbers[k] for c in parts if k in c.numbers) for k in numbers}
    return Chunk(
        {k: np.concatenate([column(c, k, c.strings, s_like[k]) for c in parts]) for k in strings},
        {k: np.concatenate([column(c, k, c.numbers, n_like[k]) for c in parts]) for k in numbers},
        parts[0].vocab,
    )
