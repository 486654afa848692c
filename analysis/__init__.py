"""Read a study back from MLflow, detect IS plateaus, write the convergence report."""

from analysis.plateau import Plateau, PlateauRule, detect_plateau
from analysis.report import write_report
from analysis.runs import StudyRuns, load_study

__all__ = ["Plateau", "PlateauRule", "StudyRuns", "detect_plateau", "load_study", "write_report"]
