"""``plinth eval``: evaluation runs -- retrieval metrics on BEIR folders, and ``run SPEC.yaml``: a dataset
through models, knowledge bases or SQL datasets, scored by metrics and an LLM judge (see
:mod:`plinth.evals`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from plinth.cli.common import adapter_model, build_settings, fail

eval_app = typer.Typer(
    help="Evaluations: retrieval metrics on BEIR folders; `run SPEC.yaml` for generation evaluations.",
    no_args_is_help=True,
)


@eval_app.command("retrieval")
def retrieval(
    dataset: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
    search_types: Annotated[
        str, typer.Option(help="Comma-separated: LEXICAL, SEMANTIC, HYBRID.")
    ] = "LEXICAL,SEMANTIC,HYBRID",
    k: Annotated[int, typer.Option(help="Results retrieved per query.")] = 100,
    hybrid_weight: Annotated[float, typer.Option(help="Weight of the semantic ranking in HYBRID.")] = 0.5,
) -> None:
    """Recall@k, Precision@k, MAP, MRR and nDCG@10 per search type, next to published anchors."""
    from plinth.evals.retrieval import main

    types = [t.strip().upper() for t in search_types.split(",") if t.strip()]
    raise typer.Exit(main(dataset, types, k, hybrid_weight))


@eval_app.command("run")
def run(
    ctx: typer.Context,
    spec_file: Annotated[
        Path, typer.Argument(help="Evaluation spec (YAML): dataset, targets, metrics, judge.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Folder for results.json and report.html (default: beside the spec).")
    ] = None,
) -> None:
    """Run an evaluation here, as the ``local`` tenant: models load in this process (catalog names, paths,
    hub ids; a target's ``adapter``, a folder beside the spec or a packaged adapter's name, is merged into
    its model), knowledge bases and SQL datasets come from the data dir. Prints the summary as JSON."""
    import asyncio
    import json

    from pydantic import ValidationError

    from plinth.evals import EvalSpec, load_items, run_evaluation, summarize
    from plinth.jobs.evaluation import write_outputs

    try:
        raw = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        spec = EvalSpec.model_validate(raw)
        dataset = (spec_file.parent / spec.dataset).resolve()
        items = load_items(dataset)[: spec.limit]
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        fail(f"{spec_file}: {exc}")
    runtime = _LocalRuntime(ctx, spec_file.parent)
    try:
        targets, judge = runtime.build(spec)
        records = asyncio.run(run_evaluation(spec, items, targets, judge))
    finally:
        runtime.close()
    result = summarize(spec, records)
    folder = out or spec_file.parent / f"{spec_file.stem}-results"
    title = spec.name or spec_file.stem
    paths = write_outputs(folder, spec.model_dump(mode="json"), result, records, title)
    typer.echo(json.dumps({**result, **paths}, indent=1))


class _LocalRuntime:
    """Targets and judge for a spec, built in this process: each named model (and model with an adapter
    merged in) loaded once."""

    def __init__(self, ctx: typer.Context, spec_dir: Path) -> None:
        self.ctx, self.spec_dir = ctx, spec_dir
        self.settings = build_settings(ctx)
        self.models: dict[str, Any] = {}
        self.prompt_formats: dict[str, str | None] = {}  # an adapter's SQL prompt format (its data card)
        self.services: list[Any] = []

    def chat(self, name: str) -> Any:
        if name not in self.models:
            from plinth.llm.catalog import resolve
            from plinth.llm.local import LocalModel

            checkpoint, served = resolve(name, Path(self.settings.data_dir))
            self.models[name] = LocalModel.load(self.settings.engine_config(checkpoint), name=served)
        return self.models[name]

    def adapted(self, model: str, adapter: str) -> Any:
        """``model`` with ``adapter`` (a folder, relative to the spec, or a packaged name) merged in."""
        key = f"{model}+{adapter}"
        if key not in self.models:
            folder = self.spec_dir / adapter
            source = str(folder.resolve()) if folder.is_dir() else adapter
            settings = build_settings(self.ctx, models=[model])
            self.models[key], self.prompt_formats[key] = adapter_model(self.ctx, settings, source)
        return self.models[key]

    def build(self, spec: Any) -> tuple[dict[str, Any], Any]:
        from plinth.evals import Judge

        targets = {t.label: self.target(t) for t in spec.targets}
        judge = None
        if spec.judge is not None:
            master = self.chat(spec.judge.master) if spec.judge.master else None
            judge = Judge(self.chat(spec.judge.model), spec.judge.config(), master)
        return targets, judge

    def target(self, target: Any) -> Any:
        from plinth.evals import model_target, rag_target, sql_target

        if target.adapter is None:
            chat, prompt_format = self.chat(target.model), None
        else:
            chat = self.adapted(target.model, target.adapter)
            prompt_format = self.prompt_formats[f"{target.model}+{target.adapter}"]
        if target.type == "model":
            return model_target(chat, system=target.system, max_tokens=target.max_tokens,
                                temperature=target.temperature)  # fmt: skip
        tenant, cp = self._tenant()
        if target.type == "knowledge_base":
            from plinth.knowledge import MIN_SCORES, KnowledgeService

            kb = KnowledgeService(cp, self.settings.data_dir, self.settings)
            self.services.append(kb)
            name, k, search = target.knowledge_base, target.k, target.search_type
            return rag_target(
                chat, lambda q: kb.retrieve(tenant, name, q, k, search), min_score=MIN_SCORES[search]
            )
        from plinth.sql import SQLService

        sql = SQLService(cp, self.settings.data_dir, self.settings)
        self.services.append(sql)
        dataset = target.sql_dataset
        return sql_target(
            chat,
            lambda question, model: sql.ask(tenant, dataset, question, model, prompt_format=prompt_format),
            lambda query: [list(r) for r in sql.runner(tenant, dataset).run(query)[1].rows],
        )

    def _tenant(self) -> tuple[Any, Any]:
        from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane

        assert self.settings.database_url is not None  # Settings fills the default
        cp = open_control_plane(self.settings.database_url)
        row = get_or_create_tenant(cp, LOCAL_TENANT)
        return Tenant(row.id, row.name, is_admin=True), cp

    def close(self) -> None:
        for service in self.services:
            service.close()
        for model in self.models.values():
            getattr(model, "shutdown", lambda: None)()
