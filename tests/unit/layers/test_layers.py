"""The layer rule of docs/contracts.md, checked from the imports themselves (import-linter, which reads every
import statement: at module level, inside functions, under TYPE_CHECKING)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Entry points and demo/test tooling: they sit above every layer and may import anything.
ENTRY_POINTS = {"ivr.cli", "ivr.testbed", "ivr.web"}


def contracts() -> list[dict[str, object]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["tool"]["importlinter"]["contracts"])


def top_level_parts() -> set[str]:
    """Every package and module directly under ivr/."""
    parts = set()
    for path in (ROOT / "ivr").iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            parts.add(f"ivr.{path.name}")
        elif path.suffix == ".py" and path.name != "__init__.py":
            parts.add(f"ivr.{path.stem}")
    return parts


def run_lint_imports(
    cwd: Path, *extra: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_part_of_ivr_has_a_rule() -> None:
    ruled = {str(m) for c in contracts() for m in c["source_modules"]}  # type: ignore[attr-defined]
    unruled = top_level_parts() - ruled - ENTRY_POINTS
    assert not unruled, (
        f"add a contract to pyproject.toml for {sorted(unruled)} (and a row to docs/contracts.md)"
    )
    assert ruled <= top_level_parts(), f"contracts name parts that do not exist: {ruled - top_level_parts()}"


def test_the_project_keeps_the_layer_rule() -> None:
    result = run_lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(contracts())} kept, 0 broken" in result.stdout


def _write_ini(target: Path) -> None:
    """The project's contracts as an INI file import-linter reads in another folder."""
    lines = ["[importlinter]", "root_package = ivr", ""]
    for contract in contracts():
        lines.append(f"[importlinter:contract:{contract['id']}]")
        lines.append(f"name = {contract['name']}")
        lines.append(f"type = {contract['type']}")
        for key in ("source_modules", "forbidden_modules"):
            lines.append(f"{key} =")
            lines.extend(f"    {module}" for module in contract[key])  # type: ignore[attr-defined]
        lines.append("")
    target.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        ("engine/machine.py", "def f():\n    from ivr.db import models\n", "ivr.engine"),
        ("services/ops.py", "def f():\n    import ivr.app.wiring\n", "ivr.services"),
        ("db/seed.py", "from ivr.services import ops\n", "ivr.db"),
        ("telephony/driver.py", "def f():\n    from ivr.app import wiring\n", "ivr.telephony"),
    ],
)
def test_an_upward_import_breaks_the_rule_even_inside_a_function(
    tmp_path: Path, module: str, statement: str, broken: str
) -> None:
    """A copy of the package layout with one upward import: the same contracts must report it."""
    package = tmp_path / "ivr"
    for part in sorted(top_level_parts()):
        name = part.split(".", 1)[1]
        if (ROOT / "ivr" / name).is_dir():
            (package / name).mkdir(parents=True)
            (package / name / "__init__.py").write_text("", encoding="utf-8")
        else:
            package.mkdir(exist_ok=True)
            (package / f"{name}.py").write_text("", encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    for helper in ("db/models.py", "app/wiring.py", "services/ops.py"):
        (package / helper).write_text("", encoding="utf-8")
    (package / module).write_text(statement, encoding="utf-8")
    _write_ini(tmp_path / ".importlinter")

    result = run_lint_imports(tmp_path, pythonpath=tmp_path)

    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout, result.stdout
    assert f"{broken} is not allowed to import" in result.stdout, result.stdout
