"""Dependencies point one way, down the request path (docs/design in README, "Layout"):
http -> execution -> schema and resolvers -> domain -> stores and images. Checked on
every import statement of the package, those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gql_api"
# Layers of the request path, top down; a module may import its own layer or lower.
RANKS = {"http": 0, "execution": 1, "schema": 2, "resolvers": 2, "domain": 3, "stores": 4}
RANKS["images"] = 4
# Beside the path: usable by every layer, using only the domain and below themselves.
BESIDE = {"auth", "settings", "errors", "logs", "caches"}
# Entry points: they may use anything, and nothing of the package uses them.
ENTRY = {
    "app",
    "lambda_handler",
    "lambda_websocket",
    "lambda_fanout",
    "azure_function",
    "__main__",
    "ops",
}
# The one import up the path: the records are the vocabulary stores speak.
ALLOWED_UP = {("stores", "gql_api.domain.records")}


def area(module: str) -> str:
    """The layer (or beside/entry area) of ``gql_api.<area>...``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported gql_api module, line) for the whole package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if (
                    target.startswith("gql_api.")
                    and (PACKAGE.parent / (target.replace(".", "/") + ".py")).exists()
                    | (PACKAGE.parent / target.replace(".", "/")).is_dir()
                ):
                    found.append((module, target, node.lineno))
    return found


def test_imports_point_down_the_request_path() -> None:
    wrong = []
    for module, target, line in imports():
        source, sink = area(module), area(target)
        if source == sink or source in ENTRY:
            continue
        if sink in ENTRY:
            wrong.append(f"{module}:{line} uses the entry point {target}")
        elif source in RANKS and sink in RANKS and RANKS[sink] < RANKS[source]:
            if (source, target) not in ALLOWED_UP:
                wrong.append(f"{module}:{line} imports {target}, up the path")
        elif source in BESIDE and sink in RANKS and RANKS[sink] < RANKS["domain"]:
            wrong.append(f"{module}:{line} (beside the path) imports {target}")
    assert wrong == []


def test_the_check_sees_the_imports() -> None:
    seen = {(area(m), area(t)) for m, t, _ in imports()}
    assert ("http", "execution") in seen and ("domain", "stores") in seen
