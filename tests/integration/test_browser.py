"""A real headless Chromium opens the dashboard and the report page.

Skips where no Chromium exists, fails instead when LSTM_TUNE_REQUIRE_SERVICES=1 (CI).
Screenshots go to pytest's tmp dir, and are copied to $LSTM_TUNE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from tests.helpers import require_or_skip
from tests.helpers.browser import Browser, Page, find_browser, keep_screenshot
from tests.helpers.servers import dashboard_process
from tests.helpers.toy_study import METRIC_SECTIONS, STUDY_SECTIONS, make_toy_study, sample_metrics

pytestmark = pytest.mark.browser
STUDY_NAME = "toy-browser"
N_TRIALS = 12


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_browser()
    if executable is None:
        require_or_skip("no Chromium found (apt-get install chromium, or set LSTM_TUNE_CHROMIUM)")
    assert executable is not None
    with Browser(executable) as b:
        yield b


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, optuna.Study, Path]:
    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'toy.db'}"
    return url, make_toy_study(url, STUDY_NAME, n_trials=N_TRIALS), tmp


def test_dashboard_page_shows_the_study_and_its_trials(
    browser: Browser, toy: tuple[str, optuna.Study, Path], tmp_path: Path
) -> None:
    url, study, tmp = toy
    with dashboard_process(url, tmp / "artifacts") as base:
        page = browser.page()
        try:
            page.navigate(f"{base}studies/{study._study_id}")
            page.wait_for(f"document.body.innerText.includes({STUDY_NAME!r})")
            # The history page draws plotly charts once the trials have loaded.
            page.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
            shot = page.screenshot(tmp_path / "dashboard-history.png")
            keep_screenshot(shot)

            page.navigate(f"{base}studies/{study._study_id}/trials")
            # The list first says "0 Trials" and fills in once the study's trials arrive.
            page.wait_for(
                f"(document.body.innerText.match(/(\\d+) Trials/) || [])[1] === '{N_TRIALS}'",
                timeout=30,
            )
            text = page.evaluate("document.body.innerText")
            assert STUDY_NAME in text
            assert f"Trial {N_TRIALS - 1}" in text and "Pruned" in text and "Best Trial" in text
            keep_screenshot(page.screenshot(tmp_path / "dashboard-trials.png"))
            assert page.errors == []
        finally:
            page.close()
    assert shot.stat().st_size > 10_000  # a real picture, not an empty page


def rendered_figures(page: Page) -> list[str]:
    return list(
        page.evaluate(
            "[...document.querySelectorAll('section .js-plotly-plot')]"
            ".filter(d => d.querySelector('.main-svg')).map(d => d.closest('section').id)"
        )
    )


def test_report_page_opens_without_js_errors_and_draws_every_figure(
    browser: Browser, toy: tuple[str, optuna.Study, Path], tmp_path: Path
) -> None:
    url, _, _ = toy
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(sample_metrics()))
    out = tmp_path / "report.html"
    args = ["report", "--study-name", STUDY_NAME, "--storage", url, "--metrics", str(metrics)]
    assert main([*args, "-o", str(out)]) == 0
    page = browser.page()
    try:
        page.navigate(out.as_uri(), timeout=60)
        expected = [s for s in (*STUDY_SECTIONS, *METRIC_SECTIONS) if s not in
                    ("trials-table", "test-metrics")]  # fmt: skip
        page.wait_for(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= "
                      f"{len(expected)}", timeout=60)  # fmt: skip
        assert rendered_figures(page) == expected
        rows = page.evaluate("document.querySelectorAll('#trials-table tbody tr').length")
        assert rows == N_TRIALS
        auc = f"{sample_metrics()['roc_auc']:.4f}"
        assert auc in page.evaluate("document.querySelector('#test-metrics').innerText")
        keep_screenshot(page.screenshot(tmp_path / "report-page.png", full_page=True))
        assert page.errors == [], page.errors
    finally:
        page.close()
