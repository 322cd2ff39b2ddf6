"""docs/contract.md lists every error code the server can answer with."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"[A-Z][A-Z_]{3,}")
ISSUERS = {"request_error", "HttpError", "_error", "RequestError"}


def codes_in_the_package() -> set[str]:
    """The codes the package sets: error classes' ``code``, the code arguments of the
    calls that make request and HTTP errors, and what ``*_code`` functions return."""
    found: set[str] = set()
    for path in (ROOT / "gql_api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            strings: list[ast.expr] = []
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "code" for t in item.targets
                    ):
                        strings.append(item.value)
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in ISSUERS:
                    strings += node.args
            elif isinstance(node, ast.FunctionDef) and node.name.endswith("_code"):
                strings += [
                    n.value for n in ast.walk(node) if isinstance(n, ast.Return) and n.value
                ]
            for value in strings:
                if (
                    isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and CODE.fullmatch(value.value)
                ):
                    found.add(value.value)
    return found


def test_every_error_code_is_in_the_contract() -> None:
    documented = set(CODE.findall((ROOT / "docs" / "contract.md").read_text()))
    codes = codes_in_the_package()
    assert {"NOT_FOUND", "RATE_LIMITED", "QUERY_TOO_DEEP"} <= codes  # the walk finds them
    assert codes - documented == set()
