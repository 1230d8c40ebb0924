"""Fixtures for the statistics tests (data in ``stats_testdata.py``)."""

from __future__ import annotations

import pandas as pd
import pytest
from stats_testdata import parse_r_data


@pytest.fixture(scope="session")
def r_data() -> pd.DataFrame:
    """The fixed 60-patient dataset of the R references."""
    return parse_r_data()
