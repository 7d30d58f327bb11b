"""The cost-model coefficients (coefficients.yaml), loaded once."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

COEFFICIENTS_FILE = Path(__file__).with_name("coefficients.yaml")


@lru_cache(maxsize=None)
def coefficients(path: str | None = None) -> dict[str, Any]:
    """All coefficients as nested dicts; ``path`` overrides the packaged file (refits)."""
    return yaml.safe_load(Path(path or COEFFICIENTS_FILE).read_text())
