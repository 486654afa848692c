"""Dataset subsets (``dataset.subset: {size, seed}``): a fixed, seeded, nested subset of the training set, a grid
axis like any training field, and a size that does not fit is a clear error where the data is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import micro_spec
from pydantic import TypeAdapter, ValidationError
from torch.utils.data import TensorDataset

from study.contract.spec.datasets import DatasetSpec, DigitsData
from study.contract.spec.load import expand
from trainables.data import (
    ImageData,
    Uint8Images,
    load_dataset,
    subset_indices,
    subset_problems,
    training_subset,
)  # fmt: skip

DIGITS_TRAIN = 1347  # 1797 digits, 25 % held out (scikit-learn's train_test_split rounds the held-out count up)


def digits(**subset: int) -> DigitsData:
    return TypeAdapter(DatasetSpec).validate_python({"kind": "digits", "resolution": 8, "subset": subset or None})


def test_spec_validates_sizes_and_seeds() -> None:
    assert digits(size=64).subset.seed == 0  # type: ignore[union-attr]
    for bad in ({"size": 0}, {"size": True}, {"size": 64, "seed": -1}, {"size": 1.5}, {"size": 64, "sead": 1}):
        with pytest.raises(ValidationError):
            TypeAdapter(DatasetSpec).validate_python({"kind": "digits", "subset": bad})


def test_subset_is_a_grid_axis_left_out_of_the_base() -> None:
    _, trials = expand(micro_spec(grid={"dataset.subset.size": [64, 256, DIGITS_TRAIN]}))
    assert [t.spec.dataset.subset.size for t in trials] == [64, 256, DIGITS_TRAIN]  # type: ignore[union-attr]
    assert [t.axes for t in trials] == [{"size": "64"}, {"size": "256"}, {"size": str(DIGITS_TRAIN)}]


def test_digits_subset_is_fixed_seeded_nested_and_leaves_held_out_whole(tmp_path: Path) -> None:
    full = load_dataset(digits(), tmp_path, tmp_path / "cache")
    assert len(full.train) == DIGITS_TRAIN
    small = load_dataset(digits(size=64), tmp_path, tmp_path / "cache")
    big = load_dataset(digits(size=256), tmp_path, tmp_path / "cache")
    assert len(small.train) == 64 and len(big.train) == 256 and len(small.held_out) == len(full.held_out)  # type: ignore
    x_full, x_small, x_big = (d.train.tensors[0] for d in (full, small, big))  # type: ignore[attr-defined]
    rows = {tuple(r.flatten().tolist()) for r in x_full}
    assert all(tuple(r.flatten().tolist()) in rows for r in x_small)  # training images, not held-out ones
    big_rows = {tuple(r.flatten().tolist()) for r in x_big}
    assert all(tuple(r.flatten().tolist()) in big_rows for r in x_small)  # nested: one permutation's prefixes
    again = load_dataset(digits(size=64), tmp_path, tmp_path / "cache")
    assert torch.equal(again.train.tensors[0], x_small)  # type: ignore[attr-defined]
    other = load_dataset(digits(size=64, seed=1), tmp_path, tmp_path / "cache")
    assert not torch.equal(other.train.tensors[0], x_small)  # type: ignore[attr-defined]
    # caches of training-set features are keyed by the exact images
    assert len({full.key, small.key, big.key, other.key}) == 4
    # all of it: the same data
    assert load_dataset(digits(size=DIGITS_TRAIN), tmp_path, tmp_path / "cache").key == full.key


def test_subset_larger_than_the_training_set_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"subset.size is 1400, .* has only {DIGITS_TRAIN} images"):
        load_dataset(digits(size=1400), tmp_path, tmp_path / "cache")
    specs = [digits(size=64), digits(size=5000), digits(size=2000), digits()]
    problems = subset_problems(specs, tmp_path, tmp_path / "cache")
    assert len(problems) == 1 and "subset.size is 5000" in problems[0]  # the largest size per dataset, once
    assert subset_problems([digits(size=64), digits()], tmp_path, tmp_path / "cache") == []


def test_uint8_training_sets_stay_uint8() -> None:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    data = ImageData("toy", Uint8Images(images, torch.arange(10)), None, 1, 2, 10, "toy")
    cut = training_subset(data, 4, 3)
    assert isinstance(cut.train, Uint8Images) and cut.train.images.shape == (4, 1, 2, 2)
    idx = subset_indices(10, 4, 3)
    assert torch.equal(cut.train.labels, idx) and torch.equal(cut.train.images[:, 0, 0, 0], idx.to(torch.uint8))
    plain = ImageData("toy", TensorDataset(torch.zeros(10, 1, 2, 2)), None, 1, 2, 0, "")
    assert len(training_subset(plain, 4, 3).train) == 4 and training_subset(plain, 4, 3).key == ""


def test_an_epoch_of_a_stated_size_cycles_fresh_permutations_of_a_small_training_set() -> None:
    """``training.epoch_size``: a subset of 64 images trains as many steps per epoch as the full set."""
    from trainables.performance import device_batches, indexed_batches
    from trainables.training import epoch_order

    order = epoch_order(64, 1347, torch.Generator().manual_seed(3))
    counts = torch.bincount(order, minlength=64)
    assert order.shape == (1347,) and set(counts.tolist()) == {21, 22}  # 1347 = 21 x 64 + 3
    assert sorted(order[:64].tolist()) == list(range(64)) and not torch.equal(order[:64], order[64:128])
    # one size: one pass, exactly the order the loader-free batches of a whole pass use
    images, labels = torch.arange(10.0).view(10, 1), torch.arange(10)
    once = epoch_order(10, 10, torch.Generator().manual_seed(1))
    one = [y.tolist() for _, y in indexed_batches(images, labels, 4, once)]
    assert sorted(sum(one, [])) == list(range(10)) and [len(b) for b in one] == [4, 4, 2]
    whole = [y.tolist() for _, y in device_batches(images, labels, 4, torch.Generator().manual_seed(1))]
    assert sorted(sum(whole, [])) == list(range(10))


def test_epoch_size_is_a_validated_training_field() -> None:
    from study.contract.spec import StudySpec

    spec = micro_spec()
    assert StudySpec.model_validate(spec).training.epoch_size is None
    spec["training"]["epoch_size"] = 1347
    assert StudySpec.model_validate(spec).training.epoch_size == 1347
    spec["training"]["epoch_size"] = 0
    with pytest.raises(ValidationError):
        StudySpec.model_validate(spec)
