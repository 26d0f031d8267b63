"""Simulation: adapter-affine routing (Serve's model multiplexing, as Plinth deploys it) against
round-robin and adapter-blind least-outstanding routing, for many LoRA adapters on R replicas.

Model (a discrete-event simulation; every constant is a flag):

- ``--adapters`` adapters (1,000) with Zipf popularity (exponent ``--zipf``, 1.0): adapter k is asked
  for with probability proportional to 1/k^s.
- Requests arrive as a Poisson stream at ``--load`` (0.5) x the fleet's warm capacity (R / mean service time).
- Each of R replicas serves its queue first in, first out, one request at a time; a request's service
  time is exponential with mean ``--service-ms`` (50), plus ``--load-ms`` (50) when its adapter is
  not among the replica's ``--slots`` most recently used adapters (a cold load, which evicts the
  least recently used one).
- Policies: ``round_robin`` (request i to replica i mod R); ``least_outstanding`` (power of two
  choices on outstanding requests, adapter-blind: Serve's default without multiplexing);
  ``adapter_affine`` (Serve's multiplexing: the least loaded replica among those holding the adapter
  while it has fewer than ``--max-ongoing`` outstanding; otherwise power of two choices over all,
  and that replica loads it).

Printed per policy and R: cold loads per 1,000 requests, and queueing delay (arrival to service start)
p50 and p95 in ms, after ``--warmup`` requests that fill the caches. Reproduce (seconds)::

    python benchmarks/routing_sim.py                    # R = 2, 8, 32 (the README's table)
    python benchmarks/routing_sim.py --replicas 4 --slots 8 --load 0.8 --json sim.json
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

POLICIES = ("round_robin", "least_outstanding", "adapter_affine")


@dataclass
class Replica:
    slots: int
    cache: OrderedDict[int, None] = field(default_factory=OrderedDict)  # adapters, LRU first
    finishes: deque[float] = field(default_factory=deque)  # finish times of its outstanding requests
    free_at: float = 0.0

    def outstanding(self, now: float) -> int:
        while self.finishes and self.finishes[0] <= now:
            self.finishes.popleft()
        return len(self.finishes)

    def holds(self, adapter: int) -> bool:
        return adapter in self.cache

    def touch(self, adapter: int) -> bool:
        """Use ``adapter``; True when that was a cold load."""
        if adapter in self.cache:
            self.cache.move_to_end(adapter)
            return False
        if len(self.cache) >= self.slots:
            self.cache.popitem(last=False)
        self.cache[adapter] = None
        return True


@dataclass
class Workload:
    arrivals: np.ndarray
    adapters: np.ndarray
    services: np.ndarray
    pair_draws: np.ndarray  # two random replica indexes per request (power of two choices)


def workload(args: argparse.Namespace, replicas: int, seed: int) -> Workload:
    rng = np.random.default_rng(seed)
    n = args.requests + args.warmup
    weights = 1.0 / np.arange(1, args.adapters + 1) ** args.zipf
    rate = args.load * replicas / (args.service_ms / 1000)  # requests per second
    return Workload(
        arrivals=np.cumsum(rng.exponential(1 / rate, n)),
        adapters=rng.choice(args.adapters, size=n, p=weights / weights.sum()),
        services=rng.exponential(args.service_ms / 1000, n),
        pair_draws=rng.integers(0, replicas, size=(n, 2)),
    )


def simulate(policy: str, w: Workload, replicas: int, args: argparse.Namespace) -> dict[str, float]:
    fleet = [Replica(args.slots) for _ in range(replicas)]
    choose = _chooser(policy, fleet, args.max_ongoing)
    waits, cold = [], 0
    for i, now in enumerate(w.arrivals):
        adapter = int(w.adapters[i])
        replica = fleet[choose(i, now, adapter, w.pair_draws[i])]
        is_cold = replica.touch(adapter)
        start = max(now, replica.free_at)
        replica.free_at = start + w.services[i] + (args.load_ms / 1000 if is_cold else 0.0)
        replica.finishes.append(replica.free_at)
        if i >= args.warmup:
            waits.append(start - now)
            cold += is_cold
    ms = np.array(waits) * 1000
    return {
        "cold_per_1000": 1000 * cold / len(waits),
        "queue_p50_ms": float(np.percentile(ms, 50)),
        "queue_p95_ms": float(np.percentile(ms, 95)),
    }


def _chooser(policy: str, fleet: list[Replica], max_ongoing: int) -> Callable[..., int]:
    def two_choices(now: float, pair: np.ndarray) -> int:
        a, b = int(pair[0]), int(pair[1])
        return a if fleet[a].outstanding(now) <= fleet[b].outstanding(now) else b

    def round_robin(i: int, now: float, adapter: int, pair: np.ndarray) -> int:
        return i % len(fleet)

    def least_outstanding(i: int, now: float, adapter: int, pair: np.ndarray) -> int:
        return two_choices(now, pair)

    def adapter_affine(i: int, now: float, adapter: int, pair: np.ndarray) -> int:
        holders = [r for r, replica in enumerate(fleet) if replica.holds(adapter)]
        if holders:
            best = min(holders, key=lambda r: fleet[r].outstanding(now))
            if fleet[best].outstanding(now) < max_ongoing:
                return best
        return two_choices(now, pair)

    return {
        "round_robin": round_robin,
        "least_outstanding": least_outstanding,
        "adapter_affine": adapter_affine,
    }[policy]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", default="2,8,32", help="comma-separated R values")
    parser.add_argument("--adapters", type=int, default=1000)
    parser.add_argument("--zipf", type=float, default=1.0, help="popularity exponent s")
    parser.add_argument("--slots", type=int, default=16, help="adapters a replica keeps (its slot budget)")
    parser.add_argument("--load", type=float, default=0.5, help="offered load / fleet capacity")
    parser.add_argument("--service-ms", type=float, default=50.0)
    parser.add_argument("--load-ms", type=float, default=50.0, help="extra time of a cold adapter load")
    parser.add_argument("--max-ongoing", type=int, default=8, help="a holder past this is passed over")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()

    results: dict[str, dict[str, dict[str, float]]] = {}
    print(
        f"{args.adapters} adapters, Zipf s={args.zipf}, {args.slots} slots/replica, load {args.load}, "
        f"service {args.service_ms:g} ms, cold load +{args.load_ms:g} ms, {args.requests} requests"
    )
    print(f"{'R':>3} {'policy':<18} {'cold/1000':>10} {'queue p50 ms':>13} {'queue p95 ms':>13}")
    for replicas in (int(r) for r in args.replicas.split(",")):
        w = workload(args, replicas, args.seed)  # the same requests for every policy
        results[str(replicas)] = {}
        for policy in POLICIES:
            row = simulate(policy, w, replicas, args)
            results[str(replicas)][policy] = row
            print(
                f"{replicas:>3} {policy:<18} {row['cold_per_1000']:>10.1f} "
                f"{row['queue_p50_ms']:>13.1f} {row['queue_p95_ms']:>13.1f}"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
