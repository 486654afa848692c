"""Adding a sampler is one spec model plus one function with its declaration (README, "Adding a sampler").

The toy here registers that way at run time (``trainables.samplers.register_sampler``), then goes through ``validate``
(the spec loader, compatibility and NFE derived from the declaration) and a real trial that logs its IS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import torch
from conftest import micro_spec
from pydantic import Field

from study.contract.memory_backend import MemoryTracker
from study.contract.spec import SpecError
from study.contract.spec.base import Strict
from study.contract.spec.load import expand
from study.plan import checked
from trainables.samplers import (
    SAMPLERS,
    EpsModel,
    SamplerDecl,
    SampleResult,
    expected_nfe,
    register_sampler,
    unregister_sampler,
)
from trainables.trainable import LocalSession, Runtime, run_trial


class ToySampler(Strict):
    """DDIM's first-order update on an equally spaced grid, written from scratch: x0 = (x - s eps)/a."""

    kind: Literal["toy_ddim"] = "toy_ddim"
    name: str | None = None
    steps: int = Field(4, ge=1, le=1000)

    @property
    def id(self) -> str:
        return self.name or f"toy-{self.steps}"


def toy_ddim(model: EpsModel, noise: torch.Tensor, *, generator: torch.Generator | None, steps: int) -> SampleResult:
    abar = model.alphas_cumprod
    ts = torch.linspace(model.T - 1, 0, steps).round().long().tolist()
    x = noise
    for i, t in enumerate(ts):
        a = abar[t].to(x.dtype)
        eps = model(x, t)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        a_next = abar[ts[i + 1]].to(x.dtype) if i + 1 < len(ts) else torch.tensor(1.0, dtype=x.dtype)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return SampleResult(x, len(ts))


@pytest.fixture(scope="module")
def toy() -> Iterator[None]:
    """Registered for this module, then taken out again (the registries are the process's)."""
    register_sampler(ToySampler, SamplerDecl(toy_ddim, needs="eps", guidable=False, nfe=lambda s, d: s.steps))
    yield
    unregister_sampler("toy_ddim")


def test_a_registered_sampler_validates_and_costs_what_it_declares(toy) -> None:
    base, trials = expand(micro_spec(**{"evaluation.samplers": [{"kind": "toy_ddim", "steps": 3}]}))
    sampler = trials[0].spec.evaluation.samplers[0]
    assert isinstance(sampler, ToySampler) and expected_nfe(sampler, trials[0].spec.dynamics) == 3
    with pytest.raises(SpecError, match="toy_ddim.*cannot sample 'ncsnv2'"):
        checked(expand(micro_spec(**{"dynamics": {"kind": "ncsnv2", "num_levels": 10},
                                     "evaluation.samplers": [{"kind": "toy_ddim"}], "grid": {}})))  # fmt: skip


def test_a_registered_sampler_runs_in_a_trial(toy, tmp_path: Path, classifier_r8) -> None:
    _, trials = expand(micro_spec(**{"training.epochs": 1, "evaluation.samplers": [{"kind": "toy_ddim", "steps": 3}]}))
    store = MemoryTracker()
    eid = store.create_experiment("toy", None, {})
    runtime = Runtime(store.uri, eid, "parent", "inst", "toy", str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(classifier_r8[0]), log_images=False)  # fmt: skip
    assert run_trial(trials[0], runtime, LocalSession(tmp_path / "ckpt"), tracker=store) == "finished"
    (run,) = store.runs(eid)
    assert 1.0 <= run.metrics["is/digits-cnn/n40/toy-3/mean"] <= 10.0
    assert run.metrics["sample/toy-3/nfe"] == 3


def test_unregister_sampler_takes_it_out_of_the_spec_and_the_registry() -> None:
    class OtherToy(ToySampler):
        kind: Literal["toy_other"] = "toy_other"  # type: ignore[assignment]

    spec = micro_spec(**{"evaluation.samplers": [{"kind": "toy_other", "steps": 2}]})
    register_sampler(OtherToy, SamplerDecl(toy_ddim, needs="eps", guidable=False, nfe=lambda s, d: s.steps))
    try:
        assert isinstance(checked(expand(spec))[1][0].spec.evaluation.samplers[0], OtherToy)
        with pytest.raises(ValueError, match="already registered"):
            register_sampler(OtherToy, SamplerDecl(toy_ddim, needs="eps", guidable=False, nfe=lambda s, d: s.steps))
    finally:
        unregister_sampler("toy_other")
    assert "toy_other" not in SAMPLERS
    with pytest.raises(SpecError, match="unknown kind 'toy_other'"):
        expand(spec)
