"""``plinth guard …``: check text against a guardrail, train and evaluate the prompt-attack classifier.

``plinth guard check "text"`` prints the verdict and exits 0 whatever it is (a check that ran is a
success; scripts read ``--json``'s ``action`` or ``blocked``); it exits 1 only when the named guardrail does
not exist and 2 on bad flags. Without ``--guardrail`` it uses the ``local`` tenant's default guardrail,
else the built-in policy (prompt attacks at MEDIUM, common PII anonymized). Nothing is audited: the CLI
checks text on your own machine.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.common import build_settings, fail

if TYPE_CHECKING:
    from plinth.guard import GuardrailPolicy, GuardResult

guard_app = typer.Typer(help="Guardrails: check text, train and evaluate detectors.", no_args_is_help=True)

DataPath = Annotated[Path, typer.Option("--data", help="The labelled corpus (shared/data).")]
Cap = Annotated[
    int | None, typer.Option("--cap", min=20, help="Rows per attack source (default: the corpus's).")
]
Augment = Annotated[
    bool,
    typer.Option(
        "--augment/--no-augment",
        help="The input stage's head also trains on benign tables and orders planted for the reading AI, "
        "the data stage's head without them (shipped); --no-augment: one head without them (the model "
        "before).",
    ),
]


class ModelChoice(StrEnum):  # plinth.evals.guard.trainers.MODELS, without importing torch to parse flags
    logistic = "logistic"
    tuned = "tuned"


class Source(StrEnum):
    input = "input"
    data = "data"
    output = "output"


@guard_app.command("check")
def guard_check(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The text to check.")],
    source: Annotated[
        Source, typer.Option(help="Which stage the text is: input, data or output.")
    ] = Source.input,
    guardrail: Annotated[
        str | None, typer.Option("--guardrail", help="Name or id of a `local` tenant guardrail.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ApplyGuardrail-shaped JSON.")] = False,
) -> None:
    """Check TEXT: print the action, the text to use (masked or the blocked message) and the findings."""
    from plinth.guard.check import check

    policy = _policy(ctx, guardrail)
    result = check(source.value, text, policy)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps({**result.to_bedrock(), "blocked": result.blocked, "guardrail": policy.label}))
        return
    typer.echo(_report(result, policy))


@guard_app.command("train")
def guard_train(
    data: DataPath = Path("../shared/data"),
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write the model (default: the shipped .npz, or the tuned path)."
        ),
    ] = None,
    model: Annotated[
        ModelChoice,
        typer.Option(
            "--model",
            help="logistic: a head over frozen MiniLM features (the shipped model, .npz); tuned: "
            "fine-tune MiniLM's top layer and a head (a measured variant, .safetensors, written under "
            "~/.cache/plinth/guard-tuned unless --out).",
        ),
    ] = ModelChoice.logistic,
    cap: Cap = None,
    augment: Augment = True,
) -> None:
    """Train the prompt-attack model, calibrate its thresholds and evaluate it leave-one-source-out
    (writes a DATA_CARD.md beside it). Deterministic: the same data gives the same bytes."""
    from plinth.evals.guard import ATTACK_CAP, train

    _need_dir(data)
    typer.echo(train(data, out, kind=model.value, cap=cap or ATTACK_CAP, augment=augment).format())


@guard_app.command("eval")
def guard_eval(
    data: DataPath = Path("../shared/data"),
    pii: Annotated[bool, typer.Option("--pii/--no-pii", help="Also evaluate the PII detector.")] = True,
    model: Annotated[
        ModelChoice, typer.Option("--model", help="Which kind of model each fold trains.")
    ] = ModelChoice.logistic,
    cap: Cap = None,
    augment: Augment = True,
) -> None:
    """Leave-one-source-out prompt-attack evaluation, false alarms on the look-alike benign set (of the
    shipped model; with --no-augment, of one trained and calibrated without the augmenting sources), then
    (with --pii) PII precision and recall."""
    from plinth.evals.guard import ATTACK_CAP, calibrate, evaluate, evaluate_lookalikes, load_corpus, trainer
    from plinth.guard import shipped_classifier

    _need_dir(data)
    rows = load_corpus(data, cap=cap or ATTACK_CAP, augment=augment)
    build = trainer(model.value)
    typer.echo(evaluate(data, build=build, rows=rows).format())
    typer.echo("")
    if not augment:
        scorer = build([r for r in rows if r.label == 1 or r.split == "train"])
        calibrate(scorer, rows)
    typer.echo(evaluate_lookalikes(shipped_classifier() if augment else scorer).format())
    if pii:
        from plinth.evals.guard import evaluate_pii

        typer.echo("")
        typer.echo(evaluate_pii().format())


def _policy(ctx: typer.Context, guardrail: str | None) -> GuardrailPolicy:
    """The named guardrail of the ``local`` tenant, else its default, else the built-in policy."""
    from dataclasses import replace

    from plinth.control import LOCAL_TENANT, get_or_create_tenant, open_control_plane
    from plinth.control.guardrails import get_default, get_guardrail
    from plinth.guard import GuardrailPolicy, builtin_policy

    settings = build_settings(ctx)
    assert settings.database_url is not None  # Settings fills the default
    cp = open_control_plane(settings.database_url)
    try:
        tenant = get_or_create_tenant(cp, LOCAL_TENANT)
        row = get_guardrail(cp, tenant.id, guardrail) if guardrail else get_default(cp, tenant.id)
    finally:
        cp.close()
    if guardrail and row is None:
        fail(f"no guardrail {guardrail!r} (create one with POST /v1/guardrails)", code=1)
    if row is None:
        return builtin_policy()
    return replace(GuardrailPolicy.from_bedrock(row.config), guardrail_id=row.id, version=row.version)


def _report(result: GuardResult, policy: GuardrailPolicy) -> str:
    lines = [
        f"guardrail: {policy.label}",
        f"action: {result.action}" + (" (blocked)" if result.blocked else ""),
    ]
    lines.append(f"output: {result.text}")
    for d in result.decisions:
        f = d.finding
        span = f" at {f.start}-{f.end}" if f.start is not None else ""
        lines.append(f"  {d.action:10s} {f.detector}/{f.type} score={f.score:.2f}{span} {f.detail}".rstrip())
    return "\n".join(lines)


def _need_dir(path: Path) -> None:
    if not path.is_dir():
        fail(f"--data {path}: no such directory (point it at the labelled corpus, shared/data)")
