"""Grid expansion: the cross product of the training axes, one trial each, in the order written."""

from __future__ import annotations

from conftest import micro_spec

from study.contract.spec import spec_fingerprint
from study.contract.spec.load import expand, value_label


def test_cross_product_order_names_and_axes() -> None:
    spec = micro_spec(grid={
        "dynamics.schedule": [{"kind": "linear", "scale": 0.5}, {"kind": "cosine"}],
        "training.lr": [1e-3, 2e-4],
        "training.seed": [0, 1, 2],
    })  # fmt: skip
    _, trials = expand(spec)
    assert len(trials) == 2 * 2 * 3
    assert [t.index for t in trials] == list(range(12))
    assert trials[0].axes == {"schedule": "linear(scale=0.5)", "lr": "0.001", "seed": "0"}
    assert trials[-1].axes == {"schedule": "cosine", "lr": "0.0002", "seed": "2"}
    assert trials[5].spec.training.seed == 2 and trials[5].spec.training.lr == 2e-4
    assert trials[6].spec.dynamics.schedule.kind == "cosine"
    assert len({t.name for t in trials}) == 12
    # Sampling axes are not expanded: every trial carries all samplers.
    assert all(len(t.spec.evaluation.samplers) == 2 for t in trials)
    assert all(t.spec.grid == {} for t in trials)


def test_no_grid_is_one_trial() -> None:
    spec = micro_spec()
    del spec["grid"]
    _, trials = expand(spec)
    assert len(trials) == 1 and trials[0].axes == {} and trials[0].name == "t0_base"


def test_gridded_field_may_be_left_out_of_the_base() -> None:
    spec = micro_spec(grid={"training.epochs": [1, 3]})
    del spec["training"]["epochs"]
    _, trials = expand(spec)
    assert [t.spec.training.epochs for t in trials] == [1, 3]


def test_axis_names_disambiguate_clashing_leaves() -> None:
    spec = micro_spec(grid={"network.dropout": [0.0, 0.1], "training.ema_decay": [0.99], "dataset.resolution": [8]})
    _, trials = expand(spec)
    assert set(trials[0].axes) == {"dropout", "ema_decay", "resolution"}


def test_fingerprint_changes_with_trials_only() -> None:
    a = expand(micro_spec())[1]
    b = expand(micro_spec(**{"resources.cpus": 2}))[1]
    c = expand(micro_spec(**{"training.epochs": 3}))[1]
    assert spec_fingerprint(a) == spec_fingerprint(b) != spec_fingerprint(c)


def test_value_label() -> None:
    assert value_label({"kind": "cosine"}) == "cosine"
    assert value_label({"kind": "linear", "scale": 0.25}) == "linear(scale=0.25)"
    assert value_label(0.001) == "0.001" and value_label([1, 2]) == "[1,2]"


def test_zipped_axis_sets_several_fields_together() -> None:
    spec = micro_spec(grid={
        "schedule_and_T": [
            {"dynamics.schedule": {"kind": "linear"}, "dynamics.timesteps": 50},
            {"dynamics.schedule": {"kind": "cosine"}, "dynamics.timesteps": 100},
        ],
        "training.seed": [0, 1],
    })  # fmt: skip
    _, trials = expand(spec)
    assert len(trials) == 4  # 2 zipped values x 2 seeds, not 2 x 2 x 2
    assert trials[0].axes == {"schedule_and_T": "linear+50", "seed": "0"}
    assert [(t.spec.dynamics.schedule.kind, t.spec.dynamics.timesteps) for t in trials[::2]] == [
        ("linear", 50), ("cosine", 100)]  # fmt: skip


def test_zipped_axis_values_must_name_training_fields() -> None:
    import pytest

    from study.contract.spec import SpecError

    with pytest.raises(SpecError, match="zipped axis"):
        expand(micro_spec(grid={"pair": [{"evaluation.num_samples": 10}]}))
