"""Claims: a study's expected findings in a small, validated vocabulary, checked by the report (analysis/claims.py).

A side (``a``, ``b``) selects trials by their axis labels (``{schedule: cosine}``; the labels ``study validate``
prints) and evaluations by id (``evaluation: ddim-20``, or a list). A claim compares side ``a`` with side ``b``
on the IS at the final evaluated epoch both share (``at: final``) or at each curve's plateau (``at: plateau``),
for every matching pair of curves:

* ``better``: a > b;  ``not_worse``: a > b - margin;  ``equivalent``: |a - b| < margin;
* ``converges_earlier``: a's plateau epoch <= b's (a curve that never plateaued is censored at its last epoch);
* ``memorizes_later``: a's memorization-onset epoch > b's (``evaluation.onset``; a curve resolved free of an onset
  through its last evaluation is censored there, an undetermined one is unknown);
* ``below``: a stays below ``value`` (e.g. a sampler whose samples stay noisy).

Verdicts (shared/STATISTICS.md section 4): *supported* when the claimed sign is resolved (the 95 % interval
excludes the other side), *contradicted* when the opposite is resolved, *unresolved* otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from study.contract.spec.base import Strict

ClaimKind = Literal["better", "not_worse", "equivalent", "converges_earlier", "memorizes_later", "below"]


class Side(Strict):
    """Trials by axis label (``{axis: label}``; empty = every trial) and evaluations by id (None = every one)."""

    axes: dict[str, str] = Field(default_factory=dict, description="axis name -> label, as validate prints them")
    evaluation: str | list[str] | None = Field(None, description="evaluation id(s), e.g. ddim-20 or ddim-20:none")

    def evaluations(self) -> list[str] | None:
        return [self.evaluation] if isinstance(self.evaluation, str) else self.evaluation


class ClaimSpec(Strict):
    """One expected finding (see the module docstring)."""

    text: str = Field(min_length=1, max_length=300, description="the claim in the paper's words")
    kind: ClaimKind
    a: Side
    b: Side | None = None
    at: Literal["final", "plateau"] = "final"
    margin: float = Field(0.0, ge=0.0, le=1e6, description="score units: not_worse / equivalent tolerance")
    value: float | None = Field(None, ge=-1e6, le=1e6, description="below: the threshold")
    source: str = Field("", max_length=200, description="where the paper says it (figure, section)")

    @model_validator(mode="after")
    def _sides(self) -> ClaimSpec:
        if self.kind == "below":
            if self.value is None:
                raise ValueError("a `below` claim needs `value`")
        elif self.b is None:
            raise ValueError(f"a `{self.kind}` claim compares two sides: give `b`")
        if self.kind == "equivalent" and self.margin <= 0:
            raise ValueError("an `equivalent` claim needs a positive `margin` (score units)")
        return self
