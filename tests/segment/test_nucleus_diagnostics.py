"""The stride-2 ceiling of analyses/nucleus_diagnostics.py (a mask kept at the decoder's
resolution, brought back to the image grid)."""

from __future__ import annotations

import numpy as np

from pathxai.segment.metrics import dice


def test_stride2_ceiling_keeps_large_objects_and_loses_specks(repo_script):
    m = repo_script("analyses/nucleus_diagnostics.py")
    yy, xx = np.mgrid[:128, :160]
    discs = np.zeros((128, 160), bool)
    for cy, cx in ((30, 30), (80, 100), (40, 120)):
        discs |= (yy - cy) ** 2 + (xx - cx) ** 2 < 15 ** 2
    got = m.stride2_ceiling(discs, 0.5, 0.5)
    assert got.shape == discs.shape
    assert dice(got, discs) > 0.97          # 30-px discs: stride 2 barely matters
    at40x = m.stride2_ceiling(discs, 0.25, 0.5)  # same pixels read as 0.25 µm: 4x coarser
    assert dice(at40x, discs) < dice(got, discs)
    specks = np.zeros((128, 160), bool)
    specks[::6, ::6] = True                    # 1-px objects: below the stride-2 grid
    assert dice(m.stride2_ceiling(specks, 0.5, 0.5), specks) < 0.5
    assert dice(specks, specks) == 1.0 and dice(specks & False, specks & False) == 1.0
