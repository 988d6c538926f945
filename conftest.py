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
