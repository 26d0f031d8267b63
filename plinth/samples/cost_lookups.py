"""Lookup tables a bill's rows index into: product and price per usage profile, resources per account.

Built once per bill; drawing rows is then pure numpy indexing (``table[p, region]``). Strings go through
the bill's vocabularies (``v(column)``), so the order the tables are built in fixes the dictionary ids
written to Parquet: build them in the same order every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from plinth.samples import cost_catalog as cv
from plinth.samples.cost_tables import Vocab

__all__ = ["K", "ProfileTables", "ResourceTables", "VocabOf", "stable_hex"]

VocabOf = Callable[[str], Vocab]
K = 6  # resources per (resource kind, account)


def stable_hex(*parts: object, n: int = 17) -> str:
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


class ProfileTables:
    """Per usage profile (``cv.PROFILES``), and per (profile, region) with the last region 'Global':
    draw weights, commitment eligibility, rates and the product columns a usage row carries."""

    def __init__(self, v: VocabOf) -> None:
        p, regions = cv.PROFILES, cv.REGIONS
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
            "line_item_product_code": v("line_item_product_code").ids([x.code for x in p]),
            "product_product_name": v("product_product_name").ids([x.name for x in p]),
            "product_servicecode": v("product_servicecode").ids([x.servicecode or x.code for x in p]),
            "product_product_family": v("product_product_family").ids([x.family for x in p]),
            "line_item_operation": v("line_item_operation").ids([x.operation for x in p]),
            "pricing_unit": v("pricing_unit").ids([x.unit for x in p]),
        }
        for key in attrs:
            default = "AWS Region" if key == "location_type" else ""
            col = f"product_{key}"
            self.by_profile[col] = v(col).ids([x.attrs.get(key, default) for x in p])
        names = [r.name for r in regions] + ["Global"]
        self.by_region = {
            "product_region": v("product_region").ids([r.code for r in regions] + ["global"]),
            "product_location": v("product_location").ids(names),
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
        self.usage_type = v("line_item_usage_type").ids(ut).reshape(shape)
        self.product_usagetype = v("product_usagetype").ids(ut).reshape(shape)
        self.description = v("line_item_line_item_description").ids(desc).reshape(shape)
        self.rate_text = v("pricing_public_on_demand_rate").ids(rate_s).reshape(shape)


class ResourceTables:
    """Accounts and payers, and ``K`` resources per (resource kind, account): each has a region (drawn
    from ``rng``), an AZ, an id in the AWS format for its kind, and user tags (the last one untagged)."""

    def __init__(self, rng: np.random.Generator, v: VocabOf) -> None:
        accounts, regions, p = cv.LINKED_ACCOUNTS, cv.REGIONS, cv.PROFILES
        n_a = len(accounts)
        self.account_weight = 1.0 / np.arange(1, n_a + 1) ** 0.6
        self.account_weight /= self.account_weight.sum()
        self.payer_of = np.array([pi for _, _, pi in accounts])
        self.account_id = v("line_item_usage_account_id").ids([a for a, _, _ in accounts])
        self.account_name = v("line_item_usage_account_name").ids([n for _, n, _ in accounts])
        self.payer_id = v("bill_payer_account_id").ids([a for a, _ in cv.PAYERS])
        self.payer_name = v("bill_payer_account_name").ids([n for _, n in cv.PAYERS])
        rw = np.array([r.weight for r in regions])
        self.region_of = rng.choice(len(regions), size=(n_a, K), p=rw / rw.sum())
        kinds = sorted({x.resource.split(":")[0] for x in p})
        self.kind_of = np.array([kinds.index(x.resource.split(":")[0]) for x in p])
        self.half = np.array([x.resource.endswith(":half") for x in p])
        apps = ["checkout", "search", "catalog", "analytics", "payments", "ml-platform"]
        ids = []
        for kind in kinds:
            for ai, (acct, name, _) in enumerate(accounts):
                for k in range(K):
                    r = regions[self.region_of[ai, k]].code
                    label = f"{name}-{apps[k]}"
                    fmt = _RESOURCE_FORMATS.get(kind, "arn:aws:{kind}:{r}:{a}:{kind}/{name}")
                    h = stable_hex(kind, acct, k)
                    ids.append(
                        "" if not kind else fmt.format(h=h, h6=h[:6], r=r, a=acct, name=label, kind=kind)
                    )
        self.resource = v("line_item_resource_id").ids(ids).reshape(len(kinds), n_a, K)
        az = [f"{regions[self.region_of[a, k]].code}{'abc'[k % 3]}" for a in range(n_a) for k in range(K)]
        self.az = v("line_item_availability_zone").ids(az).reshape(n_a, K)
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
            f"resource_tags_user_{t}": v(f"resource_tags_user_{t}")
            .ids(["" if k == K - 1 else f(a, k) for a in range(n_a) for k in range(K)])
            .reshape(n_a, K)
            for t, f in tags.items()
        }
