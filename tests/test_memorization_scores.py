"""Nearest-neighbour scores (trainables/scores.py, study/statistics/neighbours.py): the memorized fraction in pixel and
feature space (planted copies are found within the interval; training images score ~100 %, held-out ~0 %),
precision and recall as torch-fidelity computes them, and a trial that logs them with their distances."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import micro_spec, sqlite_trial_runtime
from torch_fidelity.metric_prc import prc_features_to_metric

from study.contract import keys
from study.contract.runlog import load_run_arrays
from study.contract.spec.load import expand
from study.contract.store import connect
from study.statistics.neighbours import COPY_RATIO, bootstrap_fraction, copy_flags
from trainables.data import digits_tensors
from trainables.metrics import image_metrics, reference_features, to_uint8, training_set
from trainables.scores import (
    SCORES,
    ScoreSettings,
    TrainingSet,
    _inside,
    _prc_balls,
    compute_scores,
    copies_grid,
    nearest_two,
)
from trainables.trainable import LocalSession, run_trial

MEMORIZATION = ("memorization_pixel", "memorization_feature")
ALL = (*MEMORIZATION, "precision", "recall", "fid", "kid")


def test_copy_criterion_and_fraction_bootstrap() -> None:
    nn1, nn2 = np.array([0.0, 0.0, 1.0, 1.0, 2.0]), np.array([0.0, 5.0, 3.5, 2.0, 6.0])
    assert copy_flags(nn1, nn2).tolist() == [True, True, True, False, False]  # 1/3.5 < 1/3; 2/6 is not < 1/3
    assert COPY_RATIO == pytest.approx(1 / 3)
    f = bootstrap_fraction(np.arange(100) < 30, replicates=2000, seed=1)
    assert f.mean == 0.3 and f.low < 0.3 < f.high and f.se == pytest.approx(np.sqrt(0.3 * 0.7 / 100), rel=0.1)
    assert bootstrap_fraction(np.zeros(50, bool), 100).stats() == {"mean": 0.0, "se": 0.0, "ci_low": 0.0,
                                                                    "ci_high": 0.0}  # fmt: skip
    assert np.isnan(bootstrap_fraction(np.ones(5, bool), 0).low)
    again = bootstrap_fraction(np.arange(100) < 30, replicates=2000, seed=1)
    assert (again.low, again.high) == (f.low, f.high)  # same seed and N: the same draws (paired across epochs)


def test_nearest_two_matches_a_brute_force_search() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 5, generator=gen), torch.randn(50, 5, generator=gen)
    d1, d2, idx = nearest_two(x, y, rows=8)
    full = torch.cdist(x.double(), y.double(), compute_mode="donot_use_mm_for_euclid_dist")
    best = full.sort(dim=1)
    assert torch.allclose(d1, best.values[:, 0]) and torch.allclose(d2, best.values[:, 1])
    assert torch.equal(idx, best.indices[:, 0])


def planted(rate: float, n: int = 400, m: int = 300, seed: int = 0) -> tuple[TrainingSet, torch.Tensor, torch.Tensor,
                                                                               np.ndarray]:  # fmt: skip
    """A random training set (pixels 1x8x8 uint8, features 16-d) and n generated images, each a slightly perturbed
    copy of a random training image with probability ``rate``, else new; returns (training set, generated pixels,
    generated features, which were planted)."""
    rng = np.random.default_rng(seed)
    train_px = rng.integers(0, 256, (m, 1, 8, 8))
    train_ft = rng.normal(size=(m, 16))
    copy = rng.random(n) < rate
    source = rng.integers(0, m, n)
    gen_px = np.where(copy[:, None, None, None], train_px[source] + rng.integers(-3, 4, (n, 1, 8, 8)),
                      rng.integers(0, 256, (n, 1, 8, 8)))  # fmt: skip
    gen_ft = np.where(copy[:, None], train_ft[source] + 0.05 * rng.normal(size=(n, 16)), rng.normal(size=(n, 16)))
    held_px, held_ft = rng.integers(0, 256, (100, 1, 8, 8)), rng.normal(size=(100, 16))
    u8 = lambda a: torch.from_numpy(np.clip(a, 0, 255).astype(np.uint8))  # noqa: E731
    f32 = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return TrainingSet(u8(train_px), f32(train_ft), u8(held_px), f32(held_ft)), u8(gen_px), f32(gen_ft), copy


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 1.0])
def test_planted_copies_are_found_within_the_interval(rate: float) -> None:
    assert all(SCORES[n].needs == {"training_set"} for n in MEMORIZATION)
    train, gen_px, gen_ft, copy = planted(rate, seed=int(rate * 10))
    settings = ScoreSettings(bootstrap=1000, seed=3, training=train)
    scores, arrays, _ = compute_scores({"f": gen_ft}, {"fid": "f", "isc": "f"}, list(MEMORIZATION), settings, gen_px)
    for name in MEMORIZATION:
        s = scores[name]
        # the criterion flags exactly the planted images, and the interval covers the planting rate
        assert s["mean"] == pytest.approx(copy.mean()), name
        assert s["ci_low"] <= rate <= s["ci_high"], (name, s)
        assert s["held_out"] == 0.0  # fresh real images are not copies
        d1, d2 = arrays[keys.score_array(name, "nn1")], arrays[keys.score_array(name, "nn2")]
        assert d1.shape == d2.shape == (400,) and arrays[keys.score_array(name, "held_out_nn1")].shape == (100,)
        assert copy_flags(d1, d2).mean() == s["mean"]  # recomputable from the logged distances
        assert keys.parse_score_array(keys.score_array(name, "nn_index")) == (name, "nn_index")


def _cell(grid: np.ndarray, row: int, col: int, size: int = 8) -> np.ndarray:
    """The image at (row, col) of a 1-px padded grid of ``size`` x ``size`` images (first channel: grey)."""
    y, x = 1 + row * (size + 1), 1 + col * (size + 1)
    return grid[y : y + size, x : x + size, 0]


@pytest.mark.parametrize("n", [30, 5])
def test_the_copies_grid_shows_planted_copies_first_beside_their_training_images(n: int) -> None:
    rng = np.random.default_rng(7)
    train_px = torch.from_numpy(rng.integers(0, 256, (50, 1, 8, 8)).astype(np.uint8))
    train_ft = torch.from_numpy(rng.normal(size=(50, 16)).astype(np.float32))
    gen_px = torch.from_numpy(rng.integers(0, 256, (n, 1, 8, 8)).astype(np.uint8))
    gen_ft = torch.from_numpy(rng.normal(size=(n, 16)).astype(np.float32))
    planted = {4: 10, 1: 3, 2: 40} if n < 10 else {17: 10, 5: 3, 2: 40}  # generated index -> training image copied
    for g, t in planted.items():
        gen_px[g], gen_ft[g] = train_px[t], train_ft[t]
    near = 0 if n < 10 else 20  # a near copy (small perturbation): copy-like, after the exact ones
    if n >= 10:
        gen_px[near] = (train_px[7].int() + torch.from_numpy(rng.integers(-2, 3, (1, 8, 8)))).clamp(0, 255).byte()
        gen_ft[near] = train_ft[7] + 0.01
    settings = ScoreSettings(bootstrap=0, training=TrainingSet(train_px, train_ft))
    res = compute_scores({"f": gen_ft}, {"fid": "f", "isc": "f"}, list(MEMORIZATION), settings, gen_px)
    assert set(res.images) == {(name, "copies") for name in MEMORIZATION}
    assert all("copies" not in s for s in res.scores.values()) and not any("copies" in a for a in res.arrays)
    k = min(8, n)
    for name in MEMORIZATION:
        grid = res.images[(name, "copies")]
        assert grid.dtype == np.uint8 and grid.shape == (2 * 9 + 1, k * 9 + 1, 3), name
        # exact copies first, each above the training image it copies: in pixel space at ratio 0 exactly, so ties
        # go by index; in feature space at ratio 0 up to float rounding (any order among themselves)
        first = [next(i for i in planted if np.array_equal(gen_px[i, 0].numpy(), _cell(grid, 0, c))) for c in range(3)]
        order = sorted(planted) if name == "memorization_pixel" else first
        assert sorted(first) == sorted(planted) and first == order, name
        for col, g in enumerate(order):
            assert np.array_equal(_cell(grid, 0, col), gen_px[g, 0].numpy()), (name, col)
            assert np.array_equal(_cell(grid, 1, col), train_px[planted[g], 0].numpy()), (name, col)
        if n >= 10:  # then the near copy, beside the image it was made from
            assert np.array_equal(_cell(grid, 0, 3), gen_px[near, 0].numpy()), name
            assert np.array_equal(_cell(grid, 1, 3), train_px[7, 0].numpy()), name
        # every column pairs a generated image with its nearest training image (nn_index)
        index = res.arrays[keys.score_array(name, "nn_index")]
        for col in range(k):
            g = next(i for i in range(n) if np.array_equal(gen_px[i, 0].numpy(), _cell(grid, 0, col)))
            assert np.array_equal(_cell(grid, 1, col), train_px[index[g], 0].numpy()), (name, col)
    none = ScoreSettings(bootstrap=0, training=TrainingSet(train_px, train_ft), copies=0)
    assert compute_scores({"f": gen_ft}, {"fid": "f"}, list(MEMORIZATION), none, gen_px).images == {}
    # feature space without the generated pixels: no image (the pairs are shown in pixels)
    assert compute_scores({"f": gen_ft}, {"fid": "f"}, ["memorization_feature"], settings).images == {}


def test_copies_grid_breaks_ties_by_index_and_takes_exact_copies_of_repeated_images() -> None:
    train = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    train[2] = 200  # images 0 and 1 are the same: a copy of either has nn1 = nn2 = 0
    gen = torch.stack([train[2] // 2, train[0], train[2]])
    d1, d2, idx = nearest_two(gen.float(), train.float())
    grid = copies_grid(gen, train, d1, d2, idx, k=2)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    assert _cell(grid, 0, 0, 2).tolist() == [[0, 0], [0, 0]] and _cell(grid, 0, 1, 2).tolist() == [[200] * 2] * 2


def test_a_model_returning_training_images_scores_all_and_held_out_none(classifier_r8, tmp_path: Path) -> None:
    weights = str(classifier_r8[0])
    tx, ty, hx, hy = digits_tensors(resolution=8)
    from torch.utils.data import TensorDataset

    train = training_set(TensorDataset(tx, ty), TensorDataset(hx, hy), "digits-mem", "digits-cnn", weights, tmp_path)
    assert train.pixels.shape[0] == len(tx) and train.held_out_pixels.shape[0] == len(hx)  # type: ignore[union-attr]
    ref = reference_features(TensorDataset(tx, ty), "digits-mem", "digits-cnn", weights, tmp_path)
    settings = ScoreSettings(splits=5, bootstrap=500, infinity_points=0, reference=ref, training=train)
    copies = image_metrics(to_uint8(tx[:300]), "digits-cnn", weights, MEMORIZATION, settings)
    held = image_metrics(to_uint8(hx[:300]), "digits-cnn", weights, MEMORIZATION, settings)
    for name in MEMORIZATION:
        assert copies.scores[name]["mean"] == 1.0, name
        assert held.scores[name]["mean"] <= 0.03 and held.scores[name]["held_out"] <= 0.03, (name, held.scores[name])
        assert copies.arrays[keys.score_array(name, "nn_index")].tolist() == list(range(300))
    assert set(copies.arrays) == {keys.score_array(n, a) for n in MEMORIZATION
                                  for a in ("nn1", "nn2", "nn_index", "held_out_nn1", "held_out_nn2")}  # fmt: skip


def test_precision_and_recall_are_torch_fidelitys_with_intervals() -> None:
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.normal(size=(300, 8)).astype(np.float32))
    narrow = torch.from_numpy((0.3 * rng.normal(size=(200, 8))).astype(np.float32))  # inside, but little diversity
    shifted = torch.from_numpy((rng.normal(size=(200, 8)) + 3.0).astype(np.float32))  # mostly outside

    class Ref:
        features = real

    settings = ScoreSettings(bootstrap=500, seed=0, reference=Ref())
    for gen in (narrow, shifted):
        scores, arrays, _ = compute_scores({"f": gen}, {"fid": "f", "isc": "f"}, ["precision", "recall"], settings)
        theirs = prc_features_to_metric(gen, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
                                        verbose=False)  # fmt: skip
        assert not arrays
        # the per-image indicators the intervals bootstrap average to torch-fidelity's numbers
        mine = {"precision": _inside(gen, real, _prc_balls(real)).mean(),
                "recall": _inside(real, gen, _prc_balls(gen)).mean()}  # fmt: skip
        for name in ("precision", "recall"):
            s = scores[name]
            assert s["mean"] == theirs[name] == pytest.approx(mine[name], abs=1e-6), name
            assert s["ci_low"] <= s["mean"] <= s["ci_high"] and (s["se"] > 0 or s["mean"] in (0.0, 1.0)), name
    narrow_scores = compute_scores({"f": narrow}, {"fid": "f"}, ["precision", "recall"], settings).scores
    assert narrow_scores["precision"]["mean"] > 0.9 > 0.5 > narrow_scores["recall"]["mean"]
    assert all(SCORES[n].needs_reference for n in ("precision", "recall", "fid", "kid"))


def test_a_trial_logs_every_score_with_intervals_and_the_distances(classifier_r8, tmp_path: Path) -> None:
    runtime, client, eid = sqlite_trial_runtime(tmp_path, "mem", classifier_r8[0])
    runtime = replace(runtime, log_images=True)
    spec = micro_spec(**{"training.epochs": 1, "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
                         "evaluation.inception_score": {"extra_metrics": list(ALL), "bootstrap": 200},
                         "dataset.subset": {"size": 64, "seed": 0}, "grid": {}})  # fmt: skip
    trial = expand(spec)[1][0]
    assert run_trial(trial, runtime, LocalSession(tmp_path / "ckpt")) == "finished"
    (run,) = client.search_runs([eid], f"tags.`study.instance` = '{runtime.instance}'")
    logged = run.data.metrics
    for name in (*MEMORIZATION, "precision", "recall"):
        for stat in ("mean", "ci_low", "ci_high"):
            key = keys.score_key(name, "digits-cnn", 40, "ddim-3", stat)
            assert key in logged and keys.parse_score_key(key) is not None, key
    assert keys.score_key("memorization_pixel", "digits-cnn", 40, "ddim-3", "held_out") in logged
    assert keys.score_key("fid", "digits-cnn", 40, "ddim-3", "value") in logged
    assert keys.score_key("kid", "digits-cnn", 40, "ddim-3", "mean") in logged
    arrays = load_run_arrays(connect(runtime.tracking_uri), run.info.run_id, keys.evaluation_dir("ddim-3"))
    kept = arrays[keys.evaluation_file(1)]
    index = kept[keys.score_array("memorization_pixel", "nn_index")]
    assert kept["logits"].shape[0] == 40 and index.shape == (40,) and index.max() < 64  # the 64-image subset
    held = kept[keys.score_array("memorization_feature", "held_out_nn1")]
    assert held.shape == (450,)  # the held-out set stays whole
    # the most-copied images of each memorization score, logged beside the sample grid (keys.score_image_key)
    logged_images = {keys.parse_image_file(p.path.rsplit("/", 1)[-1])
                     for p in client.list_artifacts(run.info.run_id, "images")} - {None}  # fmt: skip
    for name in MEMORIZATION:
        key = keys.score_image_key(name, "copies", "ddim-3")
        assert (key, 1) in logged_images and keys.parse_score_image_key(key) == (name, "copies", "ddim-3")
    assert (keys.image_key("ddim-3"), 1) in logged_images
