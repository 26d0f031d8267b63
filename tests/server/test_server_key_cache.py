"""The key cache behind cheap refusals: entries expire after their TTL, a revocation empties it."""

from __future__ import annotations

from plinth.control import Tenant
from plinth.server.key_cache import KeyCache, bearer_key


def test_a_cached_key_expires_after_its_ttl_and_clear_forgets_every_key():
    now = [100.0]
    cache = KeyCache(ttl_s=5.0, timer=lambda: now[0])
    acme = Tenant(2, "acme", False)
    cache.put("pk-a", acme)
    cache.put("pk-b", Tenant(3, "beta", False))
    now[0] += 4.9
    assert cache.get("pk-a") == acme and cache.get("pk-unknown") is None
    now[0] += 0.2
    assert cache.get("pk-a") is None
    cache.put("pk-a", acme)
    cache.clear()
    assert cache.get("pk-a") is None


def test_bearer_key_takes_only_a_bearer_header_with_a_key():
    assert bearer_key("Bearer pk-abc ") == "pk-abc"
    assert bearer_key("bearer pk-abc") == "pk-abc"
    assert bearer_key("Basic pk-abc") is None
    assert bearer_key("Bearer   ") is None
    assert bearer_key("") is None
