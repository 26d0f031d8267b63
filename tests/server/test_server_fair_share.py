"""Issue 16, what it must show: one tenant floods the server past its limits while another tenant's
requests are all served, get no 429, and keep their latency. The real engine (a tiny random llama on
the CPU) behind the real app; "alone" and "during the flood" are measured in the same test.

The latency goal (p95 within 1.5x of running alone) is measured by ``benchmarks/fair_share.py``, which
prints the ratio; a timed assert would fail on a loaded machine for reasons that are not the server's.
This test holds what must always hold, however loaded the machine: no 429 for the quiet tenant, every
one of its requests answered in full, the flooding tenant refused past its limit and still served.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from server_fakes import FakeEmbedder

from plinth.config import Settings
from plinth.control import create_key, get_or_create_tenant, open_control_plane
from plinth.control.tenant_limits import TenantLimits, set_limits
from plinth.engine import EngineConfig
from plinth.llm.local import LocalModel
from plinth.server import create_app

QUIET_REQUESTS = 6
FLOODERS = 8  # concurrent clients of the noisy tenant, each sending its next request at once
BODY = {"model": "tiny", "prompt": "the quick brown fox", "max_tokens": 4, "ignore_eos": True,
        "temperature": 0}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(180)  # about 10 s; were it ever to hang, fail with every thread's stack instead
def test_a_flooding_tenant_costs_another_tenant_no_429_and_no_request(tmp_path, tiny_llama):
    cfg = EngineConfig(model=str(tiny_llama), device="cpu", dtype="float32")
    cfg.kv_cache_memory_gb = 0.05
    model = LocalModel.load(cfg, name="tiny")
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    try:
        keys = {who: create_key(cp, who) for who in ("noisy", "quiet")}
        set_limits(cp, get_or_create_tenant(cp, "noisy").id, TenantLimits(concurrent_requests=2))
        # a 10 ms refusal delay (default 100): a harder flood, still one whose clients wait on a timer,
        # as remote ones wait on the network, rather than spin the loop the server runs on
        settings = Settings(data_dir=tmp_path, refusal_delay_ms=10)
        app = create_app(settings, [model], cp, embedder=FakeEmbedder())
        alone, during, noisy = asyncio.run(_alone_then_flooded(app, keys))
    finally:
        model.shutdown()
        cp.close()
    assert [status for status, _ in alone] == [200] * QUIET_REQUESTS
    assert [status for status, _ in during] == [200] * QUIET_REQUESTS  # no 429, nothing dropped
    assert all(tokens == 4 for _, tokens in alone + during)
    assert noisy.count(429) > noisy.count(200) > 0  # refused past its limit, yet served within it


async def _alone_then_flooded(
    app, keys: dict[str, str]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[int]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:

        async def post(who: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {keys[who]}"}
            return await client.post("/v1/completions", json=BODY, headers=headers)

        async def quiet() -> list[tuple[int, int]]:
            results = []
            for _ in range(QUIET_REQUESTS):
                r = await post("quiet")
                results.append((r.status_code, r.json().get("usage", {}).get("completion_tokens", 0)))
            return results

        async def flood(stop: asyncio.Event, statuses: list[int]) -> None:
            while not stop.is_set():
                statuses.append((await post("noisy")).status_code)
                await asyncio.sleep(0)

        await post("quiet")  # warm-up
        alone = await quiet()
        stop, noisy = asyncio.Event(), []
        flooders = [asyncio.create_task(flood(stop, noisy)) for _ in range(FLOODERS)]
        await asyncio.sleep(0.2)
        during = await quiet()
        stop.set()
        await asyncio.gather(*flooders)
    return alone, during, noisy
