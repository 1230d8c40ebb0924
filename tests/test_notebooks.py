"""Every notebook in notebooks/ runs top to bottom (small parameters, stain model).

Executed with nbclient on the ``python3`` kernel, which ipykernel resolves to the
interpreter running the tests (the project's venv). The notebooks share one work
folder so later ones reuse the cached run of earlier ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the dev extra (nbformat, nbclient)")
nbclient = pytest.importorskip("nbclient", reason="install the dev extra (nbformat, nbclient)")
pytest.importorskip("ipykernel", reason="install the dev extra (ipykernel)")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("notebooks")
    env = {"PATHXAI_NB_WORK": str(work), "PATHXAI_NB_MODEL": "stain", "MPLBACKEND": "Agg",
           "PATHXAI_NB_TRAIN_STEPS": "4"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield work
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_notebooks_exist_and_are_stripped():
    assert [p.name[:2] for p in PATHS] == ["01", "02", "03", "04"][: len(PATHS)] and len(PATHS) >= 3
    for path in PATHS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path, nb_env):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
