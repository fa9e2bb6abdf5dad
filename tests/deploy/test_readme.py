"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re

from tests.helpers import ROOT


def _readme_commands() -> list[str]:
    block = re.search(
        r"## Two commands\n.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S
    )
    assert block, "README.md lost its 'Two commands' section"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_gives_two_commands_and_ci_runs_the_test_one_verbatim() -> None:
    search, tests = _readme_commands()
    assert "lstm-tune search studies/imdb_smoke.yaml" in search
    assert tests.endswith("python -m pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
