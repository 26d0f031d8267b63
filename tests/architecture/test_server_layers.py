"""The server/CLI layering, checked on the source: who may import whom (issue 11).

- No CLI command imports the entry point (``plinth.cli.app`` imports them all).
- Nothing below the server imports the server or the CLI.
- The server imports feature packages (guard, knowledge, sql) by their public names only; the model
  loading in ``serve()`` still reaches two demo modules and the loaders, which a catalog will replace,
  and the embedder is reached where it lives until it moves into ``plinth.llm``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "plinth"
FEATURES = ("plinth.agents", "plinth.guard", "plinth.knowledge", "plinth.sql")
SERVE_ONLY = {"plinth.llm.local", "plinth.llm.merge"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_cli_command_imports_the_entry_point() -> None:
    commands = [p for p in _modules("cli") if p.name not in ("app.py", "__init__.py")]
    assert len(commands) >= 8
    for path in commands:
        imported = _imports(path)
        assert "plinth.cli.app" not in imported and "plinth.cli" not in imported, path.name


def test_nothing_below_the_server_imports_it() -> None:
    for package in ("adapters", "agents", "control", "engine", "guard", "knowledge", "llm", "sql", "evals"):
        for path in _modules(package):
            bad = {m for m in _imports(path) if m.startswith(("plinth.server", "plinth.cli"))}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_server_imports_feature_packages_by_their_public_names() -> None:
    for path in _modules("server"):
        for module in _imports(path):
            parts = module.split(".")
            if ".".join(parts[:2]) in FEATURES and ".".join(parts[:3]) not in SERVE_ONLY:
                package = __import__(".".join(parts[:2]), fromlist=["__all__"])
                assert len(parts) == 2 or parts[2] in package.__all__, f"{path.name}: {module}"
