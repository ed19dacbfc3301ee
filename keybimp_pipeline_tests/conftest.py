"""The whole suite runs apart from the user's own state: `make` exports KEYBIMP_DATA and DAGSTER_HOME as the
project's `data/` and `.dagster_home/`, and importing the Dagster definitions records settings history and
keys there (R-CONN-6).  Tests that need their own folders still set them; this only moves the defaults, before
any test module imports the pipeline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SCRATCH = Path(tempfile.mkdtemp(prefix="keybimp-tests-"))
os.environ["KEYBIMP_DATA"] = str(_SCRATCH / "data")
os.environ["DAGSTER_HOME"] = str(_SCRATCH / "dagster_home")
(_SCRATCH / "dagster_home").mkdir()
os.environ["KEYBIMP_CONFIG"] = str(Path(__file__).resolve().parents[1] / "integrations.example.yaml")
