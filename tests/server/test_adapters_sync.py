"""Two adapter registries over one control plane (as two API processes or Ray replicas have): each
catches up with what the other registered or removed, and never drops its own fresh entries."""

from __future__ import annotations

from pathlib import Path

from adapter_fixtures import lora_model
from lora_fixtures import make_peft_adapter

from plinth.adapters import AdapterRegistry
from plinth.control import Tenant, get_or_create_tenant, open_control_plane


def test_registries_sharing_a_control_plane_see_each_others_adapters(
    tiny_llama: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'plinth.db'}"
    cps = [open_control_plane(url), open_control_plane(url)]
    models = [lora_model(tiny_llama), lora_model(tiny_llama)]
    try:
        here, there = (
            AdapterRegistry({"base": m}, cp, tmp_path / "cache") for m, cp in zip(models, cps, strict=True)
        )
        row = get_or_create_tenant(cps[0], "acme")
        acme = Tenant(row.id, row.name)
        [entry] = here.register(acme, "bot", str(make_peft_adapter(tiny_llama, tmp_path / "bot", r=4)))
        here.sync()
        assert here.resolve(acme, "bot") == entry  # its own fresh entry survives a sync

        assert there.resolve(acme, "bot") is not None  # a name unknown there: it looks in the database
        assert models[1].adapter_tier("acme:bot") is not None  # and registered it in its own engine

        here.unregister(entry)
        assert [e.name for e in there.visible(acme)] == []  # a listing catches up with the removal
        assert there.resolve(acme, "bot") is None
        assert models[1].adapter_tier("acme:bot") is None
    finally:
        for model in models:
            model.shutdown()
        for cp in cps:
            cp.close()
