"""Settings for everything pytest collects: the tests and the notebooks (run by nbmake)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_BEFORE = "WORKBENCH_TESTS_XDG_DATA_HOME_BEFORE"


def pytest_configure(config: pytest.Config) -> None:
    """Notebooks, the demo and ``workbench s3`` use the user's embedded-S3 folder (under $XDG_DATA_HOME): the
    suite, and the notebook kernels nbmake starts (they inherit the environment), get a folder of their own."""
    os.environ[_BEFORE] = os.environ.get("XDG_DATA_HOME", "")
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="workbench-tests-data-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the folder back; the servers in it stop by themselves once their kernels are gone."""
    shutil.rmtree(os.environ["XDG_DATA_HOME"], ignore_errors=True)
    before = os.environ.pop(_BEFORE, "")
    if before:
        os.environ["XDG_DATA_HOME"] = before
    else:
        os.environ.pop("XDG_DATA_HOME", None)


_LAB_TEST = "test_run_all_in_jupyterlab_under_a_base_url_offline_then_kill_the_kernels"
_LAB_NOTEBOOKS = ("01_", "02_", "03_", "04_")  # the notebooks with maps: that test runs them (Run All, in JupyterLab)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebooks 01-04 run once, not twice: where the JupyterLab test is collected and can run (Debian's chromium
    and Playwright present), it runs them with Run All in a real JupyterLab and fails on any error output, so nbmake
    skips them (with that reason); everywhere else nbmake runs them."""
    import importlib.util

    from tests.jupyterlab import CHROMIUM

    lab_runs_them = (os.path.exists(CHROMIUM) and importlib.util.find_spec("playwright") is not None
                     and any(item.name == _LAB_TEST for item in items))
    if not lab_runs_them:
        return
    skip = pytest.mark.skip(reason=f"run with Run All in JupyterLab by tests/test_jupyterlab.py::{_LAB_TEST}")
    for item in items:
        if item.path.suffix == ".ipynb" and item.path.name.startswith(_LAB_NOTEBOOKS):
            item.add_marker(skip)
