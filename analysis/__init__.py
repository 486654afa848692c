"""Read a study back from MLflow, decide where each score curve plateaus, write the convergence report.

The decision rules and statistics are ``study.statistics``' (the trial's own, so the report reaches the decisions the
trial made). The MLflow- and plotting-side names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"write_report": "analysis.report", "StudyRuns": "analysis.runs", "load_study": "analysis.runs"}
__all__ = ["StudyRuns", "load_study", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
