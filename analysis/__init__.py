"""Read a study back from MLflow, decide where each score curve plateaus, write the convergence report.

``analysis.stats`` and ``analysis.plateau`` are numpy-only: trials import them to make the report's own decision
(early stopping). The MLflow- and plotting-side names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from analysis.plateau import Curve, PlateauRule, Verdict, assess

_LAZY = {"write_report": "analysis.report", "StudyRuns": "analysis.runs", "load_study": "analysis.runs"}
__all__ = ["Curve", "PlateauRule", "StudyRuns", "Verdict", "assess", "load_study", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
