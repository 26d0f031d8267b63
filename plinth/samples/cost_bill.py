"""The bill the cost generator draws, month by month: usage rows, commitment coverage and fees, and the
other line item types (tax, credits, support, marketplace). See :mod:`plinth.samples.costgen` for what
the columns mean and how the costs add up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np

from plinth.samples import cost_catalog as cv
from plinth.samples.cost_commitments import RI_CODES, Commitments, fee_rows, tag_reservation, tag_savings_plan
from plinth.samples.cost_lookups import K, ProfileTables, ResourceTables, stable_hex
from plinth.samples.cost_tables import Chunk, Vocab

__all__ = ["CHUNK_ROWS", "Bill", "month_starts"]

CHUNK_ROWS = 1_000_000
_SP_SHARE, _RI_SHARE = 0.3, 0.25  # of eligible usage rows covered by a Savings Plan / a reservation
_OTHER_TYPES = ["Tax", "Tax", "Credit", "Refund", "EdpDiscount", "Fee", "Fee", "Credit"]


def month_starts(months: int, start: date | None) -> list[np.datetime64]:
    """First days of the ``months`` months before ``start``'s month, oldest first, plus the end bound."""
    anchor = np.datetime64((start or date.today()).replace(day=1), "M")
    return [(anchor - months + i).astype("datetime64[D]") for i in range(months + 1)]


class Bill:
    """Draws a bill month by month. All vocabulary and lookup tables are built once, in ``__init__``
    (products and prices: ``cost_lookups``; the commitment portfolio: ``cost_commitments``);
    ``chunks`` then only indexes them with numpy."""

    def __init__(self, seed: int, months: int, start: date | None, *, negations: bool = True) -> None:
        self.rng = np.random.default_rng(seed)
        self.bounds = month_starts(months, start)
        self.negations = negations
        self.vocab: dict[str, Vocab] = {}
        self.p = cv.PROFILES
        # Built in this order on purpose: it fixes the rng draws and the vocabulary ids written out.
        self.profiles = ProfileTables(self.v)
        self.resources = ResourceTables(self.rng, self.v)
        self.commitments = Commitments(self.rng, self.v)

    def v(self, column: str) -> Vocab:
        """The vocabulary of string ``column``, shared by every chunk of this bill."""
        return self.vocab.setdefault(column, Vocab())

    # ---- rows -------------------------------------------------------------------------------------
    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Yield row groups month by month; commitment fees close each month."""
        n_months = len(self.bounds) - 1
        per_month = np.full(n_months, rows // n_months)
        per_month[: rows % n_months] += 1
        for m in range(n_months):
            fees = self.commitments.fee_count(m)
            usage_total = int(per_month[m]) - fees
            sp_used = np.zeros(len(self.commitments.sp_arn))
            ri_used = np.zeros(len(self.commitments.ri_arn))
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
                    chunk = _concat([chunk, _concat(fee_rows(self, m, sp_used, ri_used))])
                yield chunk

    def _usage_month_part(self, m: int, n: int, *, first_part: bool) -> Chunk:
        days = int((self.bounds[m + 1] - self.bounds[m]).astype(int))
        n_other = max(len(_OTHER_TYPES), n // 50)
        steady = self._steady(days, n // 5) if first_part else None
        n_steady = 0 if steady is None else len(steady[0])
        rest = n - n_other - n_steady
        p, a, k, day, covered = self._random_usage(rest, days)
        qty = self.profiles.qty[p] * self.rng.lognormal(0.0, 0.6, len(p))
        qty = np.where(self.profiles.hourly[p], np.minimum(qty, 24.0), qty)
        if steady is not None:
            sp_, sa, sk, sd = steady
            p, a, k, day = (np.concatenate(x) for x in ((p, sp_), (a, sa), (k, sk), (day, sd)))
            qty = np.concatenate([qty, self.profiles.qty[sp_]])
            covered = np.concatenate([covered, np.zeros(n_steady, bool)])
        usage = self.rows(m, p, a, k, day, qty)
        self._price(usage, covered)
        parts = [usage]
        if self.negations:
            parts.append(self._negations(usage.take(np.flatnonzero(covered))))
        parts.append(self._other(m, n_other, days))
        return _concat(parts)

    def _random_usage(self, total: int, days: int) -> tuple[np.ndarray, ...]:
        """``total`` rows counting negation twins: draw usage rows until covered ones (x2) fill it."""
        rng = self.rng
        p = rng.choice(len(self.p), size=total, p=self.profiles.weight)
        covered = self.profiles.sp_ok[p] & (rng.random(total) < _SP_SHARE)
        if self.negations:
            cost = np.cumsum(1 + covered)
            n = int(np.searchsorted(cost, total, side="right"))
            if n < total and (n == 0 or cost[n - 1] < total):
                covered[n] = False
                n += 1
            p, covered = p[:n], covered[:n]
        a = rng.choice(len(cv.LINKED_ACCOUNTS), size=len(p), p=self.resources.account_weight)
        k = rng.integers(0, K, size=len(p))
        k = np.where(self.resources.half[p], k % (K // 2), k)
        return p, a, k, rng.integers(0, days, size=len(p)), covered

    def _steady(self, days: int, budget: int) -> tuple[np.ndarray, ...] | None:
        """Always-on resources: one 24-hour row per day. Resource ``K - 1`` (never in a ':half' pool)
        only idles, which is what the idle NAT/ELB/endpoint queries look for."""
        profiles = np.flatnonzero([x.steady for x in self.p])
        per = min(3, budget // max(1, days * len(profiles)))
        if per == 0:
            return None
        combos = [(p, a, k) for p in profiles for a, k in [(0, K - 1), (1, 0), (2, K - 1)][:per]]
        pa_, aa, ka = (np.repeat(np.array(c), days) for c in zip(*combos, strict=True))
        return pa_, aa, ka, np.tile(np.arange(days), len(combos))

    def const(self, column: str, value: str, n: int) -> np.ndarray:
        """``n`` rows of one string value, as ids in ``column``'s vocabulary."""
        return np.full(n, self.v(column).id(value), np.int32)

    def rows(
        self, m: int, p: np.ndarray, a: np.ndarray, k: np.ndarray, day: np.ndarray, qty: np.ndarray
    ) -> Chunk:
        """Usage-shaped rows: product, place, resource, account, tags and dates; prices come later."""
        n, start = len(p), self.bounds[m]
        region = np.where(self.profiles.globl[p], len(cv.REGIONS), self.resources.region_of[a, k])
        payer = self.resources.payer_of[a]
        s = {col: table[p] for col, table in self.profiles.by_profile.items()}
        s |= {col: table[region] for col, table in self.profiles.by_region.items()}
        s |= {col: table[a, k] for col, table in self.resources.tags.items()}
        s["line_item_usage_type"] = self.profiles.usage_type[p, region]
        s["product_usagetype"] = self.profiles.product_usagetype[p, region]
        s["line_item_line_item_description"] = self.profiles.description[p, region]
        s["pricing_public_on_demand_rate"] = self.profiles.rate_text[p, region]
        s["line_item_resource_id"] = self.resources.resource[self.resources.kind_of[p], a, k]
        s["line_item_availability_zone"] = np.where(self.profiles.globl[p], 0, self.resources.az[a, k])
        s["line_item_usage_account_id"] = self.resources.account_id[a]
        s["line_item_usage_account_name"] = self.resources.account_name[a]
        s["bill_payer_account_id"] = self.resources.payer_id[payer]
        s["bill_payer_account_name"] = self.resources.payer_name[payer]
        invoices = self.v("bill_invoice_id").ids(
            [f"{2_000_000_000 + 97 * m + i}" for i in range(len(cv.PAYERS))]
        )
        s["bill_invoice_id"] = invoices[payer]
        stamp = str(start.astype("datetime64[M]"))
        s["year"] = self.const("year", stamp[:4], n)
        s["month"] = self.const("month", str(int(stamp[5:7])), n)
        for col, value in (
            ("bill_bill_type", "Anniversary"),
            ("bill_billing_entity", "AWS"),
            ("line_item_legal_entity", "Amazon Web Services, Inc."),
            ("line_item_currency_code", "USD"),
            ("line_item_line_item_type", "Usage"),
        ):
            s[col] = self.const(col, value, n)
        days = [str(start + d) for d in range(int((self.bounds[m + 1] - start).astype(int)) + 1)]
        intervals = self.v("identity_time_interval").ids(
            [f"{d0}T00:00:00Z/{d1}T00:00:00Z" for d0, d1 in zip(days, days[1:], strict=False)]
        )
        s["identity_time_interval"] = intervals[day]
        s["identity_line_item_id"] = self.v("identity_line_item_id").ids(
            [stable_hex("li", i, n=52) for i in range(64)]
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
            "_ri": payer * len(RI_CODES) + self.commitments.code_ri[p],
        }
        return Chunk(s, num, self.vocab)

    def fill(self, chunk: Chunk, column: str, mask: np.ndarray, ids: np.ndarray | int) -> None:
        """Set string ``column`` on the ``mask`` rows only, creating it (all empty) if the chunk lacks it."""
        arr = chunk.strings.setdefault(column, np.zeros(len(chunk), np.int32))
        arr[mask] = ids[mask] if isinstance(ids, np.ndarray) else ids

    def _price(self, c: Chunk, covered: np.ndarray) -> None:
        """On-demand cost for every row, then Savings Plan and reservation coverage on some."""
        n, num, rng = len(c), c.numbers, self.rng
        p, sp = num["_p"], num["_sp"]
        od = num["line_item_usage_amount"] * self.profiles.rate[p, num["_region"]]
        discounted = self.profiles.ri_ok[p] & ~covered & (rng.random(n) < _RI_SHARE)
        num["pricing_public_on_demand_cost"] = od
        num["line_item_unblended_cost"] = np.where(discounted, 0.0, od)
        num["line_item_blended_cost"] = num["line_item_unblended_cost"]
        num["line_item_normalized_usage_amount"] = num["line_item_usage_amount"] * np.where(
            self.profiles.hourly[p], 4.0, 1.0
        )
        num["savings_plan_savings_plan_effective_cost"] = np.where(
            covered, od * (1 - self.commitments.sp_discount[sp]), 0.0
        )
        num["savings_plan_savings_plan_rate"] = np.where(
            covered, self.profiles.rate[p, num["_region"]] * (1 - self.commitments.sp_discount[sp]), 0.0
        )
        num["reservation_effective_cost"] = np.where(discounted, od * 0.62, 0.0)
        c.strings["line_item_unblended_rate"] = c.strings["pricing_public_on_demand_rate"]
        self.vocab["line_item_unblended_rate"] = self.vocab["pricing_public_on_demand_rate"]
        types = self.v("line_item_line_item_type")
        self.fill(c, "line_item_line_item_type", covered, types.id("SavingsPlanCoveredUsage"))
        self.fill(c, "line_item_line_item_type", discounted, types.id("DiscountedUsage"))
        spot = np.array([x.usage.startswith("SpotUsage") for x in self.p])[p]
        self.fill(c, "pricing_term", ~spot, self.v("pricing_term").id("OnDemand"))
        self.fill(c, "pricing_term", discounted, self.v("pricing_term").id("Reserved"))
        tag_savings_plan(self, c, covered)
        tag_reservation(self, c, discounted)

    def _negations(self, covered: Chunk) -> Chunk:
        """Each covered row's twin that cancels its on-demand unblended cost."""
        neg = covered.take(np.arange(len(covered)))
        n = len(neg)
        neg.strings["line_item_line_item_type"] = self.const(
            "line_item_line_item_type", "SavingsPlanNegation", n
        )
        neg.strings["line_item_line_item_description"] = self.const(
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
        p = rng.choice(len(self.p), size=n, p=self.profiles.weight)
        a = rng.choice(len(cv.LINKED_ACCOUNTS), size=n, p=self.resources.account_weight)
        c = self.rows(
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
            self.fill(c, col, support, self.v(col).id(sup))
            self.fill(c, col, market, self.v(col).id(mkt))
        return c


def _concat(parts: list[Chunk]) -> Chunk:
    """Stack chunks that share vocabularies; a column one part lacks is empty/zero there.

    Columns come out in sorted order, not set order: map columns (CUR 2.0 ``product``/``resource_tags``,
    FOCUS ``Tags``) list their keys in column order, and a set's order changes with Python's per-process
    string hashing, so the same seed would write different bytes in different processes."""
    strings = sorted({k for c in parts for k in c.strings})
    numbers = sorted({k for c in parts for k in c.numbers})

    def column(c: Chunk, k: str, store: dict[str, np.ndarray], like: np.ndarray) -> np.ndarray:
        return store[k] if k in store else np.zeros(len(c), like.dtype)

    s_like = {k: next(c.strings[k] for c in parts if k in c.strings) for k in strings}
    n_like = {k: next(c.numbers[k] for c in parts if k in c.numbers) for k in numbers}
    return Chunk(
        {k: np.concatenate([column(c, k, c.strings, s_like[k]) for c in parts]) for k in strings},
        {k: np.concatenate([column(c, k, c.numbers, n_like[k]) for c in parts]) for k in numbers},
        parts[0].vocab,
    )
