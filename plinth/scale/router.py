"""Serve's request router for engine replicas: adapter-affine, then session-sticky, else least loaded.

Serve's default router (power of two choices over queue lengths, with model multiplexing) already
does two of the three jobs: a request naming an adapter goes to a replica that holds it while one has
room, and anything else to the shorter of two random queues. This subclass adds the third: a request
with a session and no adapter goes to the replica its session hashes to, so that replica's prefix
cache holds the conversation so far. Rendezvous (highest random weight) hashing keeps the mapping
stable when replicas come and go -- only the sessions of a replica that left move -- and ranks every
replica, so a full one hands the session to its runner-up instead of queueing it.

Deployed by name (``request_router_class="plinth.scale.router.AffinityRouter"``), so Ray imports it in
whichever process routes. Serve's request-router API is alpha (Ray 2.60), and its default router lives
in a private module (``RequestRouterConfig``'s documented default path): the ``ray`` extra pins < 3.
"""

from __future__ import annotations

import hashlib

from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import PendingRequest, RunningReplica

__all__ = ["AffinityRouter", "rank_for_session"]


class AffinityRouter(PowerOfTwoChoicesRequestRouter):
    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """Ranks of replicas to try in turn (Serve's contract): one rank per replica for a session,
        Serve's own choice for an adapter or for neither."""
        metadata = None if pending_request is None else pending_request.metadata
        if metadata is None or metadata.multiplexed_model_id or not metadata.session_id:
            return await super().choose_replicas(candidate_replicas, pending_request)
        ranked = rank_for_session(metadata.session_id, [r.replica_id.unique_id for r in candidate_replicas])
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        return [[by_id[replica_id]] for replica_id in ranked]


def rank_for_session(session_id: str, replica_ids: list[str]) -> list[str]:
    """``replica_ids`` best first for ``session_id``: a pure function of the two, so every router
    process agrees without talking to the others."""
    return sorted(replica_ids, key=lambda replica: _weight(session_id, replica), reverse=True)


def _weight(session_id: str, replica_id: str) -> int:
    digest = hashlib.blake2b(f"{session_id}\0{replica_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
