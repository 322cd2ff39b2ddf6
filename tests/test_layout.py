"""README's Layout section names every module of the package, so a reader finds each one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_every_module() -> None:
    block = layout_block()
    for path in sorted((ROOT / "gql_api").rglob("*.py")):
        if path.name == "__init__.py" and len(path.read_text().strip().splitlines()) <= 1:
            continue  # a package marker, no code of its own
        folder = path.parent.relative_to(ROOT / "gql_api")
        if str(folder) == ".":
            assert re.search(rf"(^|[\s,]){re.escape(path.name)}\b", block), path.name
        else:
            # A sub-package's line names its folder, then each of its modules.
            start = block.index(f"  {folder.as_posix()}/")
            rest = block[start:]
            following = re.search(r"\n  \S", rest[1:])
            entry = rest if following is None else rest[: following.start() + 1]
            assert path.name in entry, f"{folder}/{path.name}"


def test_the_layout_names_no_module_that_is_gone() -> None:
    block = layout_block().split("tests/", 1)[0]
    named = set(re.findall(r"([a-z_]+\.py)", block))
    present = {path.name for path in (ROOT / "gql_api").rglob("*.py")}
    assert named <= present, named - present


def test_each_module_of_the_request_path_has_its_own_test_file() -> None:
    # tests/<layer>/test_<module>.py for the layers between HTTP and the stores; http's
    # folder is http_layer/, since a script run from tests/ would import tests/http as
    # the standard library's http.
    folders = {"http": "http_layer", "execution": "execution", "domain": "domain"}
    missing = [
        f"tests/{folder}/test_{path.stem}.py"
        for layer, folder in folders.items()
        for path in sorted((ROOT / "gql_api" / layer).glob("*.py"))
        if path.name != "__init__.py"
        and not (ROOT / "tests" / folder / f"test_{path.stem}.py").is_file()
    ]
    assert missing == []
