"""Tune report keys, tags and role values: formatted and parsed in study/contract/keys.py; the progress line reads
them through the parser."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from study.contract import keys
from study.progress import CompactProgress


@pytest.mark.parametrize("kind", keys.REPORT_KINDS)
def test_report_keys_round_trip(kind: str) -> None:
    assert keys.parse_report_key(keys.report_key(kind, "karras-heun-edm-18")) == (kind, "karras-heun-edm-18")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [keys.REPORT_EPOCH, keys.REPORT_STATUS, "config/trial", "is/", "fid/ddim-3", 3, None])
def test_other_result_keys_are_not_report_keys(key: object) -> None:
    assert keys.parse_report_key(key) is None


def test_the_progress_line_shows_each_evaluation_with_its_interval_and_state(capsys: pytest.CaptureFixture) -> None:
    trial = SimpleNamespace(config={"trial": {"name": "t0", "spec": {"training": {"epochs": 30}}}})
    result = {
        keys.REPORT_EPOCH: 4, keys.REPORT_LOSS: 0.1035, "config/trial": {},
        keys.report_key("is", "ddim-20"): 3.86, keys.report_key("is_ci_low", "ddim-20"): 3.71,
        keys.report_key("is_ci_high", "ddim-20"): 4.02, keys.report_key("state", "ddim-20"): "rising",
        keys.report_key("is", "ancestral"): 2.5,
        keys.REPORT_STATUS: "converged", keys.REPORT_STOP_REASON: "plateau",
    }  # fmt: skip
    CompactProgress().on_trial_result(0, [], trial, result)
    line = capsys.readouterr().out
    assert line.rstrip().endswith(
        "t0  epoch  4/30  loss 0.1035  IS ddim-20 3.86 [3.71, 4.02] rising  ancestral 2.50  CONVERGED, stopped early "
        "(plateau)"
    ), line


def test_tags_and_role_values_round_trip() -> None:
    """The wire format of the run tags other tools read (the MLflow UI, a search filter) is fixed here."""
    assert [keys.parse_role(r) for r in ("parent", "trial", "classifier", "sample-size")] == list(keys.ROLES)
    assert keys.parse_role("driver") is None and keys.parse_role(None) is None
    assert keys.guidance_weights_tag("misguided") == "guidance.misguided.weights_sha256"
    assert keys.parse_guidance_weights_tag(keys.guidance_weights_tag("classifier")) == "classifier"
    assert keys.parse_guidance_weights_tag(keys.TAG_GUIDANCE_CLASSIFIER_KEY) is None
    assert keys.version_param("torch") == "version.torch" and keys.parse_version_param("version.torch") == "torch"
    assert keys.parse_version_param("training.lr") is None
    assert keys.TAG_NETWORK_PARAMETERS == "network.parameters" and keys.TAG_CLASSIFIER_KEY == "classifier.key"
