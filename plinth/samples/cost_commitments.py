"""Savings Plans and reservations: the portfolio, the columns that tag covered usage, and the fee rows.

Per payer there are two Savings Plans (Compute at 28% off, EC2 Instance at 40% off) and one reservation
per RI-able service. Each month closes with one ``SavingsPlanRecurringFee`` per plan and one ``RIFee``
per reservation, sized from what the month's usage actually used so that used + unused = what the
commitment costs; the upfront ``Fee`` rows come once, in the first month.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from plinth.samples import cost_catalog as cv
from plinth.samples.cost_lookups import VocabOf, stable_hex
from plinth.samples.cost_tables import Chunk, Vocab

__all__ = ["RI_CODES", "Bill", "Commitments", "fee_rows", "tag_reservation", "tag_savings_plan"]

RI_CODES = ["AmazonEC2", "AmazonRDS", "AmazonElastiCache", "AmazonRedshift", "AmazonES"]


class Bill(Protocol):
    """What tagging and fee rows need of the bill being drawn (:class:`plinth.samples.cost_bill.Bill`)."""

    bounds: list[np.datetime64]
    commitments: Commitments
    p: list[cv.Profile]

    def v(self, column: str) -> Vocab: ...

    def const(self, column: str, value: str, n: int) -> np.ndarray: ...

    def rows(
        self, m: int, p: np.ndarray, a: np.ndarray, k: np.ndarray, day: np.ndarray, qty: np.ndarray
    ) -> Chunk: ...

    def fill(self, chunk: Chunk, column: str, mask: np.ndarray, ids: np.ndarray | int) -> None: ...


class Commitments:
    """Two Savings Plans and one reservation per RI-able service, per payer; utilisation drawn from
    ``rng``. Arrays are indexed by plan (``_sp`` = payer * 2 + j) or reservation (``_ri``)."""

    def __init__(self, rng: np.random.Generator, v: VocabOf) -> None:
        profiles = cv.PROFILES
        n_payers = len(cv.PAYERS)
        self.sp_owner = np.array(
            [
                next(i for i, a in enumerate(cv.LINKED_ACCOUNTS) if a[0] == cv.PAYERS[p][0])
                for p in range(n_payers)
                for _ in range(2)
            ]
        )
        self.sp_discount = np.tile([0.28, 0.4], n_payers)
        self.sp_util = rng.uniform(0.85, 0.99, size=2 * n_payers)
        sp_arn = [
            f"arn:aws:savingsplans::{cv.PAYERS[p][0]}:savingsplan/{stable_hex('sp', p, j, n=8)}-"
            f"{stable_hex('sp2', p, j, n=4)}"
            for p in range(n_payers)
            for j in range(2)
        ]
        self.sp_arn = v("savings_plan_savings_plan_a_r_n").ids(sp_arn)
        self.sp_type = v("savings_plan_offering_type").ids(
            ["ComputeSavingsPlans", "EC2InstanceSavingsPlans"] * n_payers
        )
        self.ri_profile = np.array(
            [
                next(i for i, x in enumerate(profiles) if x.code == c and "ri" in x.commit)
                for _ in range(n_payers)
                for c in RI_CODES
            ]
        )
        self.ri_owner = self.sp_owner[::2].repeat(len(RI_CODES))
        self.ri_util = rng.uniform(0.8, 0.98, size=len(self.ri_profile))
        ri_arn = [
            f"arn:aws:{'ec2' if c == 'AmazonEC2' else c[6:].lower()}:us-east-1:{cv.PAYERS[p][0]}:"
            f"reserved-instances/{stable_hex('ri', p, c, n=12)}"
            for p in range(n_payers)
            for c in RI_CODES
        ]
        self.ri_arn = v("reservation_reservation_a_r_n").ids(ri_arn)
        self.code_ri = np.array([RI_CODES.index(x.code) if x.code in RI_CODES else 0 for x in profiles])

    def fee_count(self, m: int) -> int:
        """Fee rows month ``m`` closes with: one per plan and reservation, plus the upfront fees first."""
        return len(self.sp_arn) + len(self.ri_arn) * (2 if m == 0 else 1)


def tag_savings_plan(bill: Bill, c: Chunk, mask: np.ndarray) -> None:
    """Fill the ``savings_plan_*`` columns of the ``mask`` rows from their plan (``_sp``)."""
    sp = c.numbers["_sp"]
    bill.fill(c, "savings_plan_savings_plan_a_r_n", mask, bill.commitments.sp_arn[sp])
    bill.fill(c, "savings_plan_offering_type", mask, bill.commitments.sp_type[sp])
    for col, value in (
        ("savings_plan_payment_option", "No Upfront"),
        ("savings_plan_purchase_term", "1yr"),
        ("savings_plan_start_time", "2025-01-01T00:00:00.000Z"),
        ("savings_plan_end_time", "2031-01-01T00:00:00.000Z"),
    ):
        bill.fill(c, col, mask, bill.v(col).id(value))
    region = bill.v("savings_plan_region").ids(["", "US East (N. Virginia)"])[sp % 2]
    bill.fill(c, "savings_plan_region", mask, region)


def tag_reservation(bill: Bill, c: Chunk, mask: np.ndarray) -> None:
    """Fill the ``reservation_*`` and RI ``pricing_*`` columns of the ``mask`` rows (reservation ``_ri``)."""
    bill.fill(c, "reservation_reservation_a_r_n", mask, bill.commitments.ri_arn[c.numbers["_ri"]])
    for col, value in (
        ("pricing_offering_class", "standard"),
        ("pricing_lease_contract_length", "1yr"),
        ("pricing_purchase_option", "Partial Upfront"),
        ("reservation_start_time", "2025-06-01T00:00:00.000Z"),
        ("reservation_end_time", "2031-06-01T00:00:00.000Z"),
        ("reservation_modification_status", "Original"),
        ("reservation_subscription_id", "9318205732"),
    ):
        bill.fill(c, col, mask, bill.v(col).id(value))


def fee_rows(bill: Bill, m: int, sp_used: np.ndarray, ri_used: np.ndarray) -> list[Chunk]:
    """Month ``m``'s commitment rows, sized so used + unused = what the commitment costs:
    plan fees, RI fees and, in the first month only, the RI upfront fees."""
    cm = bill.commitments
    hours = float((bill.bounds[m + 1] - bill.bounds[m]).astype(int) * 24)
    n_sp, n_ri = len(sp_used), len(ri_used)
    sp_cost = np.where(sp_used > 0, sp_used / cm.sp_util, 100.0)
    sp = bill.rows(
        m,
        np.full(n_sp, cm.ri_profile[0]),
        cm.sp_owner,
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
        sp.strings[col] = bill.const(col, value, n_sp)
    tag_savings_plan(bill, sp, np.ones(n_sp, bool))
    sp.numbers |= {
        "line_item_unblended_cost": sp_cost,
        "line_item_blended_cost": sp_cost,
        "savings_plan_total_commitment_to_date": sp_cost,
        "savings_plan_used_commitment": sp_used,
        "savings_plan_recurring_commitment_for_billing_period": sp_cost,
    }
    ri = _ri_fee_rows(bill, m, ri_used, hours)
    parts = [sp, ri]
    if m == 0:
        upfront = ri.take(np.arange(n_ri))
        upfront.strings["line_item_line_item_type"] = bill.const("line_item_line_item_type", "Fee", n_ri)
        cost = upfront.numbers["reservation_amortized_upfront_fee_for_billing_period"] * 12
        upfront.numbers = {k: v for k, v in upfront.numbers.items() if not k.startswith("reservation_")}
        upfront.numbers |= {
            "line_item_unblended_cost": cost,
            "line_item_blended_cost": cost,
            "line_item_usage_amount": np.full(n_ri, 2.0),
        }
        parts.append(upfront)
    return parts


def _ri_fee_rows(bill: Bill, m: int, used: np.ndarray, hours: float) -> Chunk:
    """One ``RIFee`` per reservation: 60% recurring, 40% amortised upfront, the unused share split out."""
    cm, p = bill.commitments, bill.p
    n = len(used)
    util = np.where(used > 0, cm.ri_util, 0.0)
    cost = np.where(used > 0, used / np.maximum(util, 1e-9), 50.0)
    qty = np.full(n, 2 * hours)  # two reservations per lease
    c = bill.rows(m, cm.ri_profile, cm.ri_owner, np.zeros(n, int), np.zeros(n, int), qty)
    c.numbers["_ri"] = np.arange(n)
    heavy = [f"HeavyUsage:{p[i].attrs.get('instance_type', 'db')}" for i in cm.ri_profile]
    c.strings["line_item_usage_type"] = bill.v("line_item_usage_type").ids(heavy)
    c.strings["line_item_line_item_type"] = bill.const("line_item_line_item_type", "RIFee", n)
    c.strings["line_item_line_item_description"] = bill.v("line_item_line_item_description").ids(
        [
            f"USD {x / (2 * hours):.4f} hourly fee per reserved {p[i].code} instance"
            for x, i in zip(cost * 0.6, cm.ri_profile, strict=True)
        ]
    )
    c.strings["line_item_resource_id"] = np.zeros(n, np.int32)
    c.strings["pricing_term"] = bill.const("pricing_term", "Reserved", n)
    tag_reservation(bill, c, np.ones(n, bool))
    c.strings["reservation_number_of_reservations"] = bill.const("reservation_number_of_reservations", "2", n)
    c.strings["reservation_total_reserved_units"] = bill.v("reservation_total_reserved_units").ids(
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
