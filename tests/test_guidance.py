"""Classifier guidance (ADM, Dhariwal & Nichol 2021, Alg. 1 and 2) and misguided guidance.

The headline check drives the discrete samplers with the EXACT eps of a 2-D Gaussian mixture (tests/gmm_exact.py)
and the EXACT noisy classifier p(y = k | x_t): under x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps the mixture stays a
mixture, so the posterior over components of x_t / sqrt(ab) at sigma^2 = (1 - ab) / ab is closed form. Guidance
toward a fixed component must raise the share of samples landing in it as the scale grows; at scale 0 the
guided sampler must reproduce the unguided one bit for bit.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
import torch
from conftest import micro_spec
from gmm_exact import ExactEpsNet, three_blobs
from mlflow import MlflowClient

from study.contract.spec.load import SpecError, expand
from study.contract.store import connect
from study.plan import checked
from trainables.guidance import classifier_grad, misguided_classifier, weights_hash
from trainables.guidance_classifier import ensure_noisy_classifier, log_classifier_run
from trainables.samplers import EpsModel, ancestral, ddim
from trainables.schedules import linear_betas
from trainables.trainable import LocalSession, Runtime, run_trial

GMM = three_blobs()
TARGET = 2  # the lightest component (weight 0.2): guidance has the most room to move samples there
N = 1500
AB = torch.cumprod(1 - linear_betas(1000), 0)

TINY_CLASSIFIER = {
    "network": {
        "kind": "noisy_classifier", "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
        "attention_resolutions": [], "head_channels": 8, "norm_groups": 4,
    },
    "epochs": 1, "batch_size": 256, "lr": 1e-3, "accuracy_buckets": 4,
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


class ExactClassifier:
    """log p(y | x_t, t) of the mixture: component posterior of x_t / sqrt(ab_t) at sigma_t^2 = (1 - ab_t) / ab_t."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.ab = alphas_cumprod.to(torch.float64)
        self.seen_t: set[int] = set()

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen_t.update(int(v) for v in t.tolist())
        ab = self.ab[t.long()]
        sigma = ((1 - ab) / ab).sqrt()
        loglik = GMM._project(x.to(torch.float64) / ab.sqrt()[:, None], sigma)[2]
        return torch.log_softmax(loglik, dim=-1).to(x.dtype)


def _share(x: torch.Tensor) -> float:
    return float((GMM.responsibilities(x).argmax(-1) == TARGET).double().mean())


def _draw(fn, scale: float | None, **params) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(N, 2, generator=gen)
    model = EpsModel(ExactEpsNet(GMM, AB), AB)
    labels = torch.full((N,), TARGET)
    cond = None if scale is None else classifier_grad(ExactClassifier(AB), labels, scale)
    with torch.no_grad():
        return fn(model, noise, generator=gen, cond_fn=cond, **params).x


@pytest.mark.parametrize(
    ("fn", "params"),
    [(ancestral, {"steps": 100, "clip_x0": False}), (ddim, {"steps": 50, "eta": 0.0})],
    ids=["ancestral", "ddim"],
)
def test_guidance_moves_samples_to_the_target_component(fn, params) -> None:
    unguided = _draw(fn, None, **params)
    assert torch.equal(_draw(fn, 0.0, **params), unguided)  # scale 0 = the unguided sampler, bit for bit
    shares = [_share(_draw(fn, s, **params)) for s in (0.0, 0.3, 1.0, 3.0)]
    base = _share(unguided)
    se = math.sqrt(0.2 * 0.8 / N)
    assert abs(base - 0.2) < 5 * se  # the exact sampler reproduces the component weight
    assert all(b >= a - se for a, b in zip(shares, shares[1:], strict=False)), shares  # monotone in the scale
    assert shares[1] > base + 5 * se, shares
    assert shares[3] > base + 20 * se and shares[3] > 0.9, shares


def test_classifier_sees_the_original_timestep_under_respacing() -> None:
    clf = ExactClassifier(AB)
    model = EpsModel(ExactEpsNet(GMM, AB), AB)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ddim(
            model,
            torch.randn(4, 2, generator=gen),
            generator=gen,
            steps=10,
            cond_fn=classifier_grad(clf, torch.zeros(4, dtype=torch.long), 1.0),
        )
    assert clf.seen_t == set(range(0, 1000, 100))  # 'leading' spacing: 0, 100, ..., 900 (original indices)


def test_misguided_classifier_is_fixed_by_its_seed_and_never_updated() -> None:
    _, trials = expand(micro_spec(**{"classifier": TINY_CLASSIFIER}))
    net_spec = trials[0].spec.classifier.network
    a = misguided_classifier(net_spec, 1, 8, 10, seed=7)
    b = misguided_classifier(net_spec, 1, 8, 10, seed=7)
    c = misguided_classifier(net_spec, 1, 8, 10, seed=8)
    assert weights_hash(a) == weights_hash(b) != weights_hash(c)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    before = weights_hash(a)
    state = torch.random.get_rng_state()
    misguided_classifier(net_spec, 1, 8, 10, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    cond = classifier_grad(a, torch.arange(6) % 10, 1.0)
    with torch.no_grad():
        g = cond(torch.randn(6, 1, 8, 8), 30)
    assert g.shape == (6, 1, 8, 8) and torch.isfinite(g).all() and g.abs().sum() > 0
    assert weights_hash(a) == before and all(p.grad is None for p in a.parameters())


def _guided_spec(**extra: object) -> dict:
    return micro_spec(
        **{
            "classifier": TINY_CLASSIFIER,
            "evaluation.guidance": [{"kind": "none"}, {"kind": "classifier"}, {"kind": "misguided", "scale": 2}],
        }
        | extra
    )


def test_guidance_spec_ids_and_validation() -> None:
    base, _ = expand(_guided_spec())
    ids = [i for i, _, _ in base.evaluation.evaluations]
    assert ids == [
        "ancestral-5", "ancestral-5:classifier-1", "ancestral-5:misguided-2",
        "ddim-3", "ddim-3:classifier-1", "ddim-3:misguided-2",
    ]  # fmt: skip
    assert expand(micro_spec())[0].classifier is None  # unguided specs need no classifier section
    with pytest.raises(SpecError, match="classifier:"):
        checked(expand(micro_spec(**{"evaluation.guidance": [{"kind": "classifier"}]})))
    with pytest.raises(SpecError, match="discrete DDPM samplers"):
        checked(expand(
            _guided_spec(
                **{
                    "dynamics": {"kind": "vp_sde"},
                    "network": {"kind": "ddpmpp", "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                                "attention_resolutions": []},
                    "evaluation.samplers": [{"kind": "karras", "steps": 5}],
                    "grid": {},
                }
            )
        ))  # fmt: skip
    with pytest.raises(SpecError, match="same"):
        expand(micro_spec(**{"classifier": TINY_CLASSIFIER, "evaluation.guidance": [{"kind": "misguided"}] * 2}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment("guidance", artifact_location=str(root / "artifacts"))
    parent = client.create_run(eid, tags={"study.role": "parent"}).info.run_id
    return uri, eid, parent


def test_classifier_job_is_cached_and_logged(store, tmp_path: Path) -> None:
    uri, eid, parent = store
    _, trials = expand(_guided_spec())
    spec = trials[0].spec
    cache = tmp_path / "cache"
    first = ensure_noisy_classifier(spec, tmp_path / "data", cache)
    assert first.trained and first.path.exists() and len(first.meta["accuracy"]) == 4
    mtime = first.path.stat().st_mtime_ns
    second = ensure_noisy_classifier(spec, tmp_path / "data", cache)
    assert not second.trained and second.path == first.path and second.path.stat().st_mtime_ns == mtime
    client = MlflowClient(uri)
    tracker = connect(uri)
    run_id = log_classifier_run(tracker, eid, parent, "micro", "inst", spec, first)
    assert log_classifier_run(tracker, eid, parent, "micro", "inst", spec, second) == run_id  # one run per instance
    run = client.get_run(run_id)
    assert run.data.tags["study.role"] == "classifier" and run.data.tags["mlflow.parentRunId"] == parent
    hist = client.get_metric_history(run_id, "classifier/accuracy")
    assert sorted(m.step for m in hist) == [0, 1, 2, 3] and all(0.0 <= m.value <= 1.0 for m in hist)
    # the linear and cosine trials train different classifiers (same dataset, different schedule)
    paths = {job.key: job.path for job in (ensure_noisy_classifier(t.spec, tmp_path / "data", cache) for t in trials)}
    assert len(paths) == 2 and first.path in paths.values()


@pytest.mark.parametrize("batched", [False, True], ids=["one-at-a-time", "lockstep"])
def test_guided_trial_logs_target_accuracy_and_overhead(store, classifier_r8, tmp_path: Path, batched: bool) -> None:
    """Guided evaluations in a real trial; in lockstep (``batch_evaluations``) the seconds are shares of one wall
    time, so no guidance time overhead is claimed."""
    uri, eid, parent = store
    _, trials = expand(_guided_spec(**{"training.epochs": 1, "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
                                       "performance.batch_evaluations": batched}))  # fmt: skip
    t = trials[0]
    client = MlflowClient(uri)
    instance = uuid.uuid4().hex[:8]
    job = ensure_noisy_classifier(t.spec, tmp_path / "data", tmp_path / "cache")
    weights = {job.key: str(job.path.resolve())}
    runtime = Runtime(
        uri, eid, parent, instance, "micro", str(tmp_path / "data"), str(tmp_path / "cache"),
        extractor_weights=str(classifier_r8[0]), log_images=True, classifier_weights=weights,
    )  # fmt: skip
    assert run_trial(t, runtime, LocalSession(tmp_path / "ckpt")) == "finished"
    [run] = client.search_runs(
        [eid], filter_string=f"tags.`study.instance` = '{instance}' and tags.`study.role` = 'trial'"
    )
    m = run.data.metrics
    for eval_id in ("ddim-3:classifier-1", "ddim-3:misguided-2"):
        assert f"is/digits-cnn/n40/{eval_id}/mean" in m
        assert 0.0 <= m[f"guidance/{eval_id}/target_accuracy"] <= 1.0
        assert m[f"sample/{eval_id}/seconds"] > 0
        if batched:
            assert f"guidance/{eval_id}/time_overhead" not in m
        else:
            assert m[f"guidance/{eval_id}/time_overhead"] > 0
    assert "guidance/ddim-3/target_accuracy" not in m
    assert run.data.tags["guidance.misguided.weights_sha256"]
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("ddim-3~classifier-1" in p or "ddim-3/classifier-1" in p for p in images), images
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "guidance/ddim-3:classifier-1")]
    assert arts == ["guidance/ddim-3:classifier-1/targets.json"]
