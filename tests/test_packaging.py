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
CONDA_ONLY = {"python", "pip", "lazrs-python"}  # lazrs: what laspy[lazrs] brings on PyPI
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


def _extra(project: dict, name: str) -> list[str]:
    out = []
    for requirement in project["optional-dependencies"][name]:
        nested = re.match(r"workbench\[(.*)\]", requirement)
        out += [r for e in nested.group(1).split(",") for r in _extra(project, e)] if nested else [requirement]
    return out


def test_binder_installs_what_the_notebooks_need_and_nothing_for_tests() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_name_and_spec(r) for r in project["dependencies"] + _extra(project, "notebooks"))
    lines = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert dict(_name_and_spec(line) for line in lines) == wanted
    assert not {"pytest", "hypothesis", "moto", "playwright", "nbmake", "rio-pmtiles"} & set(wanted)
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert not (ROOT / "binder" / "environment.yml").exists()  # repo2docker would prefer it over requirements.txt


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
