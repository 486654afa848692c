"""Study specs: pydantic models (strict, discriminated by ``kind``), YAML loading and grid expansion."""

from study.contract.spec.load import SpecError, Trial, expand, load_study, spec_fingerprint
from study.contract.spec.study import StudySpec

__all__ = ["SpecError", "StudySpec", "Trial", "expand", "load_study", "spec_fingerprint"]
