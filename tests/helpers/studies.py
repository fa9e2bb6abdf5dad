"""Study files for tests: one way to write a study YAML, from keyword parts over a tiny study.

Tests take the ``study_file`` fixture (``tests/conftest.py``), which writes into the test's
``tmp_path``; code that runs outside a test (module-scoped fixtures, a file's own builder of
its task's study) calls :func:`write_study` with a directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

from tests.helpers import TINY_SPACE

# What a part left out defaults to: a search of two one-epoch trials of TINY_SPACE, random
# sampler, no pruner. No `data:`: a test that loads data says which file.
TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "training": {"epochs": 1},
    "search": {"n_trials": 2, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
    "space": TINY_SPACE,
}


def write_study(directory: Path, *, filename: str | None = None, **parts: Any) -> Path:
    """Write a study YAML into ``directory`` and return its path.

    ``parts`` are the file's top-level keys (``name``, ``task``, ``seed``, ``data``,
    ``training``, ``search``, ``space`` or ``params``, ``result``, or any other key a test
    wants refused), each written as given; a part given as ``None`` is left out, and a part
    not given is :data:`TINY_STUDY`'s. ``params`` without ``space`` leaves the default space
    out (a file has one of them). The file is ``filename``, or ``<name>.yaml``.
    """
    doc = {**TINY_STUDY, **parts}
    if "params" in parts and "space" not in parts:
        del doc["space"]
    doc = {key: value for key, value in doc.items() if value is not None}
    name = doc.get("name")
    path = directory / (filename or f"{name if isinstance(name, str) else 'study'}.yaml")
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


class StudyFile(Protocol):
    """The ``study_file`` fixture: :func:`write_study` into the test's ``tmp_path``."""

    def __call__(self, *, filename: str | None = None, **parts: Any) -> Path: ...
