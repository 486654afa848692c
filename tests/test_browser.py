"""What a person sees, in a real headless Chromium: the study's HTML report, and the MLflow UI path of the README.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), driven by selenium with the driver's path
given, so selenium never downloads a browser or a driver. Both tests read one real micro study: two trials trained
by ``run_trial`` into a SQLite MLflow store whose experiment and parent run come from the study's own
``ensure_experiment`` and ``create_parent_run``, and the report ``write_report`` writes from it. Screenshots are
kept under each test's ``tmp_path`` (their paths are printed).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, micro_spec, serve_mlflow, write_spec

pytestmark = pytest.mark.integration

# Sections the report must have (each <h2> gets id = slug of its heading). WHEN_PRESENT sections are checked only
# when the page has them; once every report carries one, move its id up to REQUIRED_SECTIONS.
REQUIRED_SECTIONS = ("claims", "findings", "convergence", "paired-differences", "early-stopping")
WHEN_PRESENT_SECTIONS = ("arms",)
REPORT_WIDTH = 900  # px: a laptop window; the body must not scroll sideways (tables scroll in their own div.scroll)
CHROMIUM_FLAGS = (  # without the networking flags Chromium stalls on a machine with no network
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
DESCRIPTION = " ".join(["Micro study for the browser tests: linear vs cosine schedule."] * 4)  # long: not a param
WAIT_S = 300  # only stops a page that never renders: the MLflow UI's first render takes seconds on 2 busy cores


@dataclass(frozen=True)
class Browser:
    chromium: str
    driver: str


@dataclass(frozen=True)
class MicroStudy:
    root: Path
    tracking_uri: str
    name: str
    experiment_id: str
    parent_name: str
    link: str  # the IS chart view's link, as `run` prints it (for http://127.0.0.1:5000)
    trials: list[str]
    evaluations: list[str]  # sampler ids, e.g. "ddim-3"
    report: Path  # index.html


@pytest.fixture(scope="session")
def browser() -> Browser:
    """Debian's Chromium and its driver. Skipped when they are missing, except under CI, where that fails."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the dev extra)")
    if missing:
        reason = f"needs {', '.join(missing)}: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"CI {reason}")
        pytest.skip(reason)
    return Browser(chromium, driver)


@pytest.fixture(scope="module")
def micro_study(browser: Browser, classifier_r8, tmp_path_factory: pytest.TempPathFactory) -> MicroStudy:
    """A real micro study (about a minute on 2 cores): experiment, parent run, two trials, references, report."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from analysis import write_report
    from study.contract.experiment import create_parent_run, ensure_experiment
    from study.contract.spec import load_study
    from study.contract.store import TrackingConfig, connect
    from study.plan import Plan
    from study.runner import Tracked, reference_scores, write_chart_view
    from trainables.trainable import LocalSession, Runtime, run_trial

    root = tmp_path_factory.mktemp("browser-study")
    claims = [{"text": "cosine beats linear under DDIM", "kind": "better", "a": {"axes": {"schedule": "cosine"}},
               "b": {"axes": {"schedule": "linear"}, "evaluation": "ddim-3"}}]  # fmt: skip
    spec_path = write_spec(root / "micro.yaml", micro_spec("micro", description=DESCRIPTION, claims=claims))
    base, trials = load_study(spec_path)
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(connect(uri), base.name, str(root / "mlartifacts"))
    payloads = [t.to_config() for t in trials]
    instance = uuid.uuid4().hex[:12]
    tracker = connect(uri)
    parent = create_parent_run(tracker, experiment_id, base.name, base.description, instance, spec_path, payloads, {})
    link = write_chart_view(Plan.load(spec_path), Tracked(tracker, TrackingConfig(uri, None), base.name,
                                                          experiment_id, parent, instance))  # as `run` does
    assert link is not None
    weights = str(classifier_r8[0])
    refs = reference_scores(base, weights, root / "data", root / "cache")
    client.log_batch(parent, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in refs.items()])
    runtime = Runtime(uri, experiment_id, parent, instance, base.name, str(root / "data"), str(root / "cache"),
                      extractor_weights=weights, log_images=True)  # fmt: skip
    for t in trials:
        assert run_trial(t, runtime, LocalSession(root / t.name)) == "finished"
    client.set_terminated(parent, "FINISHED")
    write_report(uri, base.name, root / "report", claims=base.claims)
    evaluations = [eval_id for eval_id, _, _ in base.evaluation.evaluations]
    return MicroStudy(root, uri, base.name, experiment_id, f"{base.name} (study)", link, [t.name for t in trials],
                      evaluations, root / "report" / "index.html")  # fmt: skip


@pytest.fixture
def open_browser(browser: Browser, tmp_path: Path) -> Iterator[Callable[[int, int], Any]]:
    """``open_browser(width, height)``: a fresh headless Chromium (its own profile), closed after the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(width: int, height: int):
        options = webdriver.ChromeOptions()
        options.binary_location = browser.chromium
        profile = tmp_path / f"chromium-profile-{len(drivers)}"
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=browser.driver), options=options)
        driver.set_page_load_timeout(WAIT_S)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        with contextlib.suppress(Exception):
            driver.quit()


@contextlib.contextmanager
def screenshot_on_failure(driver, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(path))
            print(f"failure screenshot: {path}")
        raise


def full_page_screenshot(driver, path: Path) -> Path:
    """The whole page, not just the window (Chrome DevTools Protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# ------------------------------------------------------------------------------------------------ the HTML report


def test_report_is_readable_in_chromium(micro_study: MicroStudy, open_browser, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(REPORT_WIDTH, 1000)
    driver.execute_cdp_cmd(  # exactly 900 CSS px wide, whatever the window decorations
        "Emulation.setDeviceMetricsOverride",
        {"width": REPORT_WIDTH, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
    )
    with screenshot_on_failure(driver, tmp_path / "report-failure.png"):
        driver.get(micro_study.report.as_uri())
        WebDriverWait(driver, WAIT_S).until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"
            )
        )
        images = driver.execute_script(
            "return [...document.images].map(i => [i.alt, i.getAttribute('src').slice(0, 22), i.naturalWidth])"
        )
        assert len(images) >= 3, images  # IS vs epoch, samples, loss at least
        assert [i for i in images if not i[1].startswith("data:image/")] == [], "images must be embedded"
        assert [i for i in images if i[2] == 0] == [], "images that did not decode"

        headings = driver.execute_script("return [...document.querySelectorAll('h2')].map(h => [h.id, h.textContent])")
        ids = {h[0] for h in headings}
        assert [h for h in headings if not h[0]] == [], "every section heading has an id"
        assert set(REQUIRED_SECTIONS) | {"verdicts"} <= ids, headings  # the first screen: one line per comparison
        first = driver.execute_script("return document.getElementById('verdicts').nextElementSibling.textContent")
        assert "beats" in first or "no resolved difference" in first, first
        for section in [s for s in WHEN_PRESENT_SECTIONS if s in ids] + list(REQUIRED_SECTIONS):
            tables = driver.execute_script(
                """let n = document.getElementById(arguments[0]).nextElementSibling, k = 0;
                   for (; n && n.tagName !== 'H2'; n = n.nextElementSibling)
                       k += n.tagName === 'TABLE' ? 1 : n.querySelectorAll('table').length;
                   return k;""",
                section,
            )
            assert tables >= 1, f"section #{section} has no table"

        width = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert width[0] == REPORT_WIDTH and width[1] <= width[0], f"page scrolls sideways at {width[0]} px: {width}"
        wide = driver.execute_script(
            """return [...document.body.querySelectorAll('*')].filter(e => !e.closest('div.scroll'))
                   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                   .map(e => e.tagName + (e.id ? '#' + e.id : ''));"""
        )
        assert wide == [], f"wider than {REPORT_WIDTH} px outside a div.scroll: {wide}"
        # every table's key columns (the difference, the verdict, the state) are on the first screen, not scrolled
        # off to the right; every table has some
        hidden = driver.execute_script(
            """return [...document.querySelectorAll('table')].flatMap(t => {
                   const keys = [...t.querySelectorAll('thead th.key')];
                   if (!keys.length) return [t.closest('div').previousElementSibling?.textContent + ': no key column'];
                   return keys.filter(th => th.getBoundingClientRect().right > window.innerWidth + 1)
                              .map(th => th.textContent); });"""
        )
        assert hidden == [], f"key columns beyond {REPORT_WIDTH} px: {hidden}"
        # a footnote mark is explained only where a cell carries it
        marks = driver.execute_script(
            """const cells = [...document.querySelectorAll('td')].map(c => c.textContent).join('');
               const prose = [...document.querySelectorAll('p')].map(p => p.textContent).join('');
               return ['‡', '†'].filter(m => prose.includes(m) && !cells.includes(m) &&
                   ![...document.querySelectorAll('th')].some(h => h.textContent.includes(m)));"""
        )
        assert marks == [], f"footnotes that mark nothing: {marks}"

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        print(f"report screenshot: {full_page_screenshot(driver, tmp_path / 'report.png')}")


# ------------------------------------------------------------------------------------ the MLflow UI path of README


def readme_ui_path() -> str:
    """The README's "The MLflow UI" subsection (under Quickstart), which this test follows click by click."""
    text = (REPO / "README.md").read_text()
    found = re.search(r"^### The MLflow UI\n(.*?)(?=^#)", text, re.S | re.M)
    assert found, "README.md lost its '### The MLflow UI' subsection"
    return found.group(1)


@pytest.fixture(scope="module")
def mlflow_ui(micro_study: MicroStudy) -> Iterator[str]:
    """``mlflow ui --backend-store-uri sqlite:///…`` as the README starts it, on a free port, in its lean mode."""
    with serve_mlflow("ui", ["--backend-store-uri", micro_study.tracking_uri], cwd=micro_study.root) as base:
        yield base


def test_study_runs_are_readable_in_the_mlflow_ui(micro_study: MicroStudy) -> None:
    """What the UI shows comes from the store: a model-training experiment, and params without long texts
    (MLflow prints every param as key=value above each sample-grid card)."""
    from mlflow import MlflowClient

    from study.contract.runlog import PARAM_MAX_CHARS

    client = MlflowClient(micro_study.tracking_uri)
    assert client.get_experiment(micro_study.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([micro_study.experiment_id], "tags.`study.role` = 'trial'")
    assert sorted(r.info.run_name for r in runs) == sorted(micro_study.trials)
    for run in runs:
        params = run.data.params
        assert "description" not in params and run.data.tags["study.description"] == DESCRIPTION
        assert max(len(v) for v in params.values()) <= PARAM_MAX_CHARS
        assert params["training.lr"] == "0.002"


def test_the_printed_link_opens_the_is_chart_of_every_trial(
    micro_study: MicroStudy, mlflow_ui: str, open_browser, tmp_path: Path
) -> None:
    """The link `run` prints, on the UI the README starts: a chart per evaluation with IS mean, ci_low and ci_high,
    one line each per trial against step = epoch, no parent run; then the README's "still needed" steps: closing
    the Assistant panel widens the chart, and the Model training switch. Screenshot: tmp_path/mlflow-is-link.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    readme = readme_ui_path()
    for words in ("mlflow ui --backend-store-uri", "viewStateShareKey=quickstart.is-vs-epoch&compareRunsMode=CHART",
                  "**MLflow Assistant**", "**✕**", "**Model training**", "**Search metric charts**"):  # fmt: skip
        assert words in readme, f"the README's MLflow UI path no longer says {words!r}"
    default_base = "http://127.0.0.1:5000"
    assert micro_study.link.startswith(default_base + "/#/experiments/"), micro_study.link
    link = mlflow_ui + micro_study.link[len(default_base) :]  # the test's server listens on a free port

    driver = open_browser(1400, 900)
    wait = WebDriverWait(driver, WAIT_S)
    card = "[data-testid=experiment-view-compare-runs-card]:has(.js-plotly-plot)"
    with screenshot_on_failure(driver, tmp_path / "mlflow-link-failure.png"):
        driver.get(link)
        # the i-th card, scrolled into view (MLflow draws a chart only once it is on screen): its text (title, axes,
        # legend) and the lines plotly draws, or null before it is drawn
        card_i = ("const c = document.querySelectorAll('[data-testid=experiment-view-compare-runs-card]')"
                  "[arguments[0]];"
                  "if (!c) return null; c.scrollIntoView(); const p = c.querySelector('.js-plotly-plot');"
                  "return p && p.data ? [c.innerText, p.data.filter(t => t.x && t.x.length)"
                  ".map(t => t.name + ' ' + t.line.dash)] : null;")  # fmt: skip
        for i, evaluation in enumerate(micro_study.evaluations):  # the view's section comes first, in spec order
            keys = [f"is/digits-cnn/n40/{evaluation}/{stat}" for stat in ("mean", "ci_low", "ci_high")]
            title = " vs ".join(keys)  # the chart draws the mean with its interval bounds
            legend = {f"{t} ({k})" for t in micro_study.trials for k in keys}  # a line per trial and key
            text, lines = wait.until(lambda d, i=i, ti=title, le=legend: (c := d.execute_script(card_i, i)) and
                                     c[0].startswith(ti) and le <= set(c[0].split("\n")) and c)  # fmt: skip
            assert "Step" in text.split("\n"), text  # x = step = epoch
            # the mean solid, ci_low and ci_high dashed and dotted: three distinct lines for each trial
            assert {f"{t} {dash}" for t in micro_study.trials for dash in ("solid", "dash", "dot")} <= set(lines)
            assert not [line for line in lines if line.split(" ")[0] not in micro_study.trials], lines
        assert micro_study.parent_name not in driver.find_element(By.TAG_NAME, "body").text  # the parent: hidden

        driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", card)
        width = f"return document.querySelector('{card}').getBoundingClientRect().width"
        before = driver.execute_script(width)
        close = driver.find_elements(By.CSS_SELECTOR, "button[data-component-id='mlflow.assistant.chat_panel.close']")
        if close:  # README: the Assistant panel, closed with the ✕ (aria-label Close) at its top right
            close[0].click()
            wait.until(lambda d: d.execute_script(width) > before + 100)
        time.sleep(1)  # let plotly finish drawing before the screenshot
        shot = tmp_path / "mlflow-is-link.png"
        driver.save_screenshot(str(shot))
        print(f"MLflow UI screenshot: {shot} (chart {before:.0f} px wide, {driver.execute_script(width):.0f} px "
              "without the Assistant)")
        click = wait.until(ec.element_to_be_clickable((By.XPATH, "//*[normalize-space(text())='Model training']")))
        click.click()  # README: the switch that shows model training pages in the sidebar
        wait.until(ec.visibility_of_element_located((By.LINK_TEXT, "Experiments")))
