"""The README's Python example runs as written (documentation that cannot silently rot)."""

from __future__ import annotations

import re

from conftest import REPO


def test_readme_sampler_example_runs() -> None:
    text = (REPO / "README.md").read_text()
    code = re.search(r"## Samplers without Ray.*?```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["out"].x.shape == (1000, 3, 8, 8) and scope["out"].nfe == 250


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    readme = (REPO / "README.md").read_text()
    assert any(line.strip() and line in readme and "pytest" in line for line in ci)


def test_readme_early_stopping_snippet_is_a_valid_training_section() -> None:
    from ruamel.yaml import YAML

    from study.contract.spec.study import EvaluationSpec, TrainingSpec

    text = (REPO / "README.md").read_text()
    block = re.search(r"\*\*Early stopping\*\*.*?```yaml\n(.*?)```", text, re.S).group(1)
    doc = YAML(typ="safe").load(block)
    training = TrainingSpec.model_validate(doc["training"])
    plateau = EvaluationSpec.model_validate({"samplers": [{"kind": "ddim"}]} | doc["evaluation"]).plateau
    assert training.stop is not None and plateau.resolved_margin()[0] > 0


def test_readme_claims_snippet_validates() -> None:
    from ruamel.yaml import YAML

    from study.contract.spec.claims import ClaimSpec

    text = (REPO / "README.md").read_text()
    block = re.search(r"\*\*Findings, claims and comparisons\.\*\*.*?```yaml\n(.*?)```", text, re.S).group(1)
    (claim,) = [ClaimSpec.model_validate(c) for c in YAML(typ="safe").load(block)["claims"]]
    assert claim.kind == "converges_earlier" and claim.a.evaluations() == ["ddim-20"]


def test_readme_performance_snippet_validates() -> None:
    from ruamel.yaml import YAML

    from study.contract.spec.performance import PerformanceSpec

    text = (REPO / "README.md").read_text()
    block = re.search(r"## Performance.*?```yaml\n(.*?)```", text, re.S).group(1)
    perf = PerformanceSpec.model_validate(YAML(typ="safe").load(block)["performance"])
    assert perf.compile and perf.data_on_device and perf.train_autocast == "bf16"
    assert perf.batch_evaluations and perf.cuda_graphs
    assert PerformanceSpec() == PerformanceSpec(train_autocast="none", sample_autocast="none", batch_evaluations=False,
                                                cuda_graphs=False)  # exact by default


def test_readme_seed_copy_makes_a_comparable_second_study(tmp_path) -> None:
    """The README's recipe for a second study to ``compare`` with the quickstart: same spec, new name, other seed."""
    import subprocess

    from study.contract.spec import load_study

    text = (REPO / "README.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("sed ") and "quickstart_seed1.yaml" in x)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "quickstart.yaml").write_text((REPO / "specs" / "quickstart.yaml").read_text())
    subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True, timeout=120)
    base, trials = load_study(tmp_path / "specs" / "quickstart.yaml")
    copy, copied = load_study(tmp_path / "specs" / "quickstart_seed1.yaml")
    assert copy.name == "quickstart_seed1" and copy.training.seed == base.training.seed + 1
    assert copy.evaluation == base.evaluation and len(copied) == len(trials)


def test_readme_quotes_the_quickstart_run_record() -> None:
    """The README's quickstart figures are the committed run record's (``bench/quickstart_record.py``): the commit,
    the CPU, the wall time, each trial's end and each curve's state, and the headline paired difference."""
    import json

    record = json.loads((REPO / "docs" / "results" / "quickstart" / "record.json").read_text())
    text = (REPO / "README.md").read_text()
    section = text[text.index("What a user sees") : text.index("Run the tests:")]
    minutes, seconds = divmod(record["wall_seconds"], 60)
    assert f"{minutes} min {seconds} s" in section and record["commit"] in section and record["cpu"] in section
    for trial, t in record["trials"].items():
        name = trial.split("_", 1)[1]
        assert f"{name}: {t['status']} after {t['epochs_trained']} of {t['budget']} epochs" in section, trial
    for curve, c in record["curves"].items():
        epoch = f" at epoch {c['plateau_epoch']} [{c['plateau_range'][0]}-{c['plateau_range'][1]}]" \
            if c["plateau_epoch"] is not None else ""  # fmt: skip
        assert f"{curve.split('_', 1)[1]} {c['state']}{epoch}" in section, curve
    h = record["headline"]
    assert f"{h['cosine_minus_linear']:+.2f} [{h['low']:+.2f}, {h['high']:+.2f}] IS at epoch {h['epoch']}" in section


def test_readme_states_the_quickstart_seed_spread() -> None:
    """The README's seed-to-seed spread of the quickstart is ``spread.json``'s (``bench.quickstart_record --spread``
    over the seed records): each trial's stop epochs, how many seeds call each curve plateaued (and at which epochs),
    and the range of the headline difference."""
    import json

    spread = json.loads((REPO / "docs" / "results" / "quickstart" / "spread.json").read_text())
    text = (REPO / "README.md").read_text()
    section = " ".join(text[text.index("What a user sees") : text.index("Run the tests:")].split())
    seeds = spread["seeds"]
    assert f"seeds {min(seeds)}-{max(seeds)}" in section
    for trial, (lo, hi) in spread["stop_epoch"].items():
        assert f"{trial.split('_', 1)[1]} after {lo}-{hi} epochs" in section, trial
    for curve, n in spread["plateaued"].items():
        span = spread["plateau_epoch"][curve]
        at = f" (epochs {span[0]}-{span[1]})" if span else ""
        assert f"{curve.split('_', 1)[1]} in {n} of {len(seeds)}{at}" in section, curve
    h = spread["headline"]
    lo, hi = h["cosine_minus_linear"]
    assert f"{lo:+.2f} to {hi:+.2f} IS" in section and f"resolved in {h['resolved']} of {len(seeds)}" in section


def test_readme_quotes_the_test_command_records() -> None:
    """How long the README's test command takes, idle and loaded, is the committed records'
    (``bench/test_command_record.py``): wall time, pytest's summary and the commit."""
    import json

    text = " ".join((REPO / "README.md").read_text().split())
    for kind in ("idle", "loaded"):
        r = json.loads((REPO / "docs" / "results" / "test-command" / f"record-{kind}.json").read_text())
        minutes, seconds = divmod(r["wall_seconds"], 60)
        assert f"{minutes} min {seconds} s ({r['summary']}; commit {r['commit']})" in text, kind
        assert r["cpu"] in text
