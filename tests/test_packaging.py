"""Packaging: pyproject and environment.yml agree; README's commands are what CI runs."""

from __future__ import annotations

import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_ONLY = {"python", "pip"}
CONDA_NAMES = {"python-duckdb": "duckdb"}  # conda-forge name -> PyPI name


def _name_and_spec(requirement: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$", requirement.strip())
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(3).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("workbench[")]
    return dict(_name_and_spec(r) for r in requirements)


def conda_requirements(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text())
    out: dict[str, str] = {}
    for item in data["dependencies"]:
        entries = item["pip"] if isinstance(item, dict) else [item]
        for entry in entries:
            name, spec = _name_and_spec(entry)
            name = CONDA_NAMES.get(name, name)
            if name not in CONDA_ONLY:
                out[name] = spec
    return out


def test_environment_yml_mirrors_pyproject() -> None:
    assert conda_requirements(ROOT / "environment.yml") == pyproject_requirements()


def test_binder_uses_the_same_environment() -> None:
    assert (ROOT / "binder" / "environment.yml").read_text() == (ROOT / "environment.yml").read_text()


def _readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert block, f"README has no {marker} block"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    command = _readme_command("test-command")
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pytest" in command


def test_readme_demo_command_runs_the_demo() -> None:
    command = _readme_command("demo-command")
    assert command.endswith("workbench demo") and "[demo]" in command
