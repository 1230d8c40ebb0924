"""Shared pytest fixtures.

``shared_data`` points at ``../shared/data`` (real public images, slides and masks,
beside the repository root). Tests that need it skip with a clear reason when it
is absent. Nothing may write there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder, or skip when it is not there."""
    if not (SHARED_DATA / "index.csv").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set PATHXAI_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_slides(shared_data: Path) -> Path:
    """The ``../shared/data/slides`` folder of real and broken slide files."""
    return shared_data / "slides"


@pytest.fixture
def repo_script(monkeypatch):
    """Load a script of the repository (e.g. ``"analyses/compare_checkpoints.py"``) as a
    module, registered in ``sys.modules`` for the test only (dataclasses look it up)."""
    def load(relative: str):
        path = REPO_ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, mod)
        spec.loader.exec_module(mod)
        return mod
    return load
