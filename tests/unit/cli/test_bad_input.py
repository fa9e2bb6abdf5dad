"""Every bad input a user can give: one line on stderr, exit 2, no traceback, nothing written.

Each case writes its files into an empty directory, runs the real CLI there (in-process, so a
traceback shows as an exception and fails the case), and checks: exit code 2, exactly one
line on stderr that names the file or flag, no new file or directory (no storage, no cache
beyond the one given), and a bounded time and memory (the growth of the process's peak
resident size while the case runs: a YAML alias bomb once took 2.3 GB before it failed).
"""

from __future__ import annotations

import gzip
import importlib
import pkgutil
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lstm_tune.cli import main
from tests.helpers.studies import write_study

# Each case must fail within this: nothing is trained or downloaded before the check.
MAX_SECONDS = 30
# ... and may raise the process's peak resident memory by at most this much.
MAX_PEAK_GROWTH_MB = 256
PARAMS = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 20,
    "batch_size": 8,
}
SPACE = {**PARAMS, "hidden_size": {"low": 4, "high": 8}}
GOOD_CSV = "review,sentiment\n" + "".join(
    f"text number {i} is {'good' if i % 2 else 'bad'},{'positive' if i % 2 else 'negative'}\n"
    for i in range(40)
)


def study(**changes: object) -> dict[str, object]:
    """A valid study on data.csv, with top-level ``changes`` (None removes a key)."""
    doc: dict[str, object] = {
        "name": "bad",
        "data": {"path": "data.csv", "max_features": 100},
        "training": {"epochs": 1},
        "search": {"n_trials": 1},
        "space": SPACE,
    }
    doc.update(changes)  # a None is left out when the file is written
    return doc


def section(name: str, **changes: object) -> dict[str, object]:
    """``study()`` with keys of one section changed."""
    base = study()
    inner = dict(base[name]) if isinstance(base.get(name), dict) else {}  # type: ignore[arg-type]
    inner.update(changes)
    return study(**{name: inner})


@dataclass
class Case:
    """Files to write (name → text, bytes or a YAML document) and the command to run."""

    files: dict[str, object]
    argv: list[str]
    says: str  # a fragment the one line must contain
    env: dict[str, str] = field(default_factory=dict)  # environment variables set for it


def _search(doc: object, data: object = GOOD_CSV, *flags: str, says: str) -> Case:
    return Case({"s.yaml": doc, "data.csv": data}, ["search", "s.yaml", *flags], says)


def _alias_bomb() -> str:
    levels = ['l0: &l0 ["xxxxxxxxxx"]']
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join([*levels, "name: *l8", "params: *l8"]) + "\n"


CASES: dict[str, Case] = {
    # --- study files ----------------------------------------------------------------------
    "missing study file": Case({}, ["search", "nope.yaml"], "nope.yaml: no such file"),
    "study file is a directory": Case({"d/x": ""}, ["search", "d"], "is a directory"),
    "binary study file": Case({"s.yaml": b"\x00\x01name"}, ["search", "s.yaml"], "binary file"),
    "non-UTF-8 study file": Case({"s.yaml": b"name: caf\xe9\n"}, ["search", "s.yaml"], "UTF-8"),
    "invalid YAML": Case({"s.yaml": "name: [x\n"}, ["search", "s.yaml"], "invalid YAML: line"),
    "empty study file": Case({"s.yaml": ""}, ["search", "s.yaml"], "<top level>"),
    "study is a list": Case({"s.yaml": "- 1\n"}, ["search", "s.yaml"], "a mapping"),
    "duplicate key": Case({"s.yaml": "name: a\nname: b\n"}, ["search", "s.yaml"], "twice"),
    "YAML alias bomb": Case({"s.yaml": _alias_bomb()}, ["search", "s.yaml"], "s.yaml: "),
    "python tag": Case(
        {"s.yaml": "name: !!python/object/apply:os.system ['true']\n"},
        ["search", "s.yaml"],
        "invalid YAML",
    ),
    "unknown top-level key": _search(study(colour="red"), says="colour"),
    "missing name": _search(study(name=None), says="name"),
    "empty name": _search(study(name=""), says="name"),
    "unknown task": _search(study(task="regression"), says="task: got 'regression'"),
    "negative seed": _search(study(seed=-1), says="seed: got -1"),
    "seed out of range": _search(study(seed=2**40), says="seed: got 1099511627776"),
    "seed is text": _search(study(seed="x"), says="seed: got 'x'"),
    "epochs zero": _search(section("training", epochs=0), says="training.epochs"),
    "epochs text": _search(section("training", epochs="five"), says="training.epochs"),
    "report_every zero": _search(section("training", report_every=0), says="report_every"),
    "report_sample one": _search(section("training", report_sample=1), says="report_sample"),
    "unknown training key": _search(section("training", lr=1), says="training.lr"),
    "n_trials zero": _search(section("search", n_trials=0), says="search.n_trials"),
    "timeout NaN": _search(section("search", timeout=float("nan")), says="search.timeout"),
    "timeout negative": _search(section("search", timeout=-5), says="search.timeout"),
    "unknown sampler": _search(section("search", sampler={"name": "bayes"}), says="sampler"),
    "unknown pruner": _search(section("search", pruner={"name": "x"}), says="pruner.name"),
    "bad sampler option": _search(
        section("search", sampler={"name": "tpe", "options": {"n_startup": 3}}),
        says="search.sampler.options",
    ),
    "bad pruner option": _search(
        section("search", pruner={"name": "median", "options": {"warmup": 1}}),
        says="search.pruner.options",
    ),
    "sampler option of the wrong type": _search(
        section("search", sampler={"name": "tpe", "options": {"n_startup_trials": "x"}}),
        says="search.sampler.options.n_startup_trials: got 'x'; expected int",
    ),
    "pruner option of the wrong type": _search(
        section("search", pruner={"name": "median", "options": {"n_startup_trials": 1.5}}),
        says="search.pruner.options.n_startup_trials: got 1.5",
    ),
    "LSTM_TUNE_THREADS not a count": Case(
        {"s.yaml": study(), "data.csv": GOOD_CSV},
        ["search", "s.yaml"],
        "LSTM_TUNE_THREADS: got '2 threads'; expected N or N,M",
        env={"LSTM_TUNE_THREADS": "2 threads"},
    ),
    "LSTM_TUNE_THREADS three numbers": Case(
        {"s.yaml": study(), "data.csv": GOOD_CSV},
        ["search", "s.yaml", "--workers", "auto"],
        "LSTM_TUNE_THREADS: got '1,1,1'",
        env={"LSTM_TUNE_THREADS": "1,1,1"},
    ),
    "--workers neither a count nor auto": _search(
        study(), GOOD_CSV, "--workers", "many", says="expected a count >= 1 or 'auto'"
    ),
    "cmaes sigma0 negative": _search(
        section("search", sampler={"name": "cmaes", "options": {"sigma0": -1}}),
        says="search.sampler.options.sigma0: got -1; expected a number > 0",
    ),
    "tpe n_startup_trials negative": _search(
        section("search", sampler={"name": "tpe", "options": {"n_startup_trials": -1}}),
        says="search.sampler.options.n_startup_trials: got -1; expected a number >= 0",
    ),
    "hyperband reduction_factor 1": _search(
        section("search", pruner={"name": "hyperband", "options": {"reduction_factor": 1}}),
        says="search.pruner.options.reduction_factor: got 1; expected a number >= 2",
    ),
    "sampler options not a mapping": _search(
        section("search", sampler={"name": "tpe", "options": [1]}), says="sampler.options"
    ),
    "unknown metric": _search(section("search", metric="val_mse"), says="search.metric"),
    "direction against the metric": _search(
        section("search", direction="minimize"), says="search.direction"
    ),
    "enqueue not a list": _search(section("search", enqueue=5), says="search.enqueue"),
    "enqueue unknown param": _search(
        section("search", enqueue=[{"width": 3}]), says="search.enqueue[0].width"
    ),
    "space missing a param": _search(
        study(space={k: v for k, v in SPACE.items() if k != "batch_size"}), says="batch_size"
    ),
    "space unknown param": _search(study(space={**SPACE, "width": 3}), says="space.width"),
    "low above high": _search(
        study(space={**SPACE, "hidden_size": {"low": 9, "high": 4}}), says="low <= high"
    ),
    "log range from zero": _search(
        study(space={**SPACE, "dropout_rate": {"low": 0.0, "high": 0.1, "log": True}}),
        says="log: true",
    ),
    "step on a float": _search(
        study(space={**SPACE, "learning_rate": {"low": 0.1, "high": 0.2, "step": 1}}),
        says="no step for a float range",
    ),
    "empty choices": _search(
        study(space={**SPACE, "batch_size": {"choices": []}}), says="space.batch_size.choices"
    ),
    "float layer count": _search(study(space={**SPACE, "num_layers": 1.5}), says="num_layers"),
    "knob of another task": _search(
        study(space={**SPACE, "predict_change": True}),
        says="space.predict_change: got 'predict_change'; expected a knob task "
        "text_classification accepts",
    ),
    "unknown pooling": _search(study(space={**SPACE, "pooling": "sum"}), says="space.pooling"),
    "true/false knob as a range": _search(
        study(space={**SPACE, "bidirectional": {"low": 0, "high": 1}}),
        says="space.bidirectional",
    ),
    "negative weight decay": _search(
        study(space={**SPACE, "weight_decay": -1}), says="space.weight_decay: got -1"
    ),
    "enqueue knob of another task": _search(
        section("search", enqueue=[{"predict_change": True}]),
        says="search.enqueue[0].predict_change: got 'predict_change'; expected a knob task",
    ),
    "enqueue unknown knob value": _search(
        section("search", enqueue=[{"lr_schedule": "step"}]),
        says="search.enqueue[0].lr_schedule: got 'step'",
    ),
    "enqueue value outside the choices": _search(
        study(
            space={**SPACE, "pooling": {"choices": ["max", "mean"]}},
            search={"n_trials": 1, "enqueue": [{"pooling": "last"}]},
        ),
        says="search.enqueue[0].pooling: got 'last'; expected one of space.pooling's values: "
        "max, mean",
    ),
    "enqueue true for a fixed 1": _search(
        study(
            space={**SPACE, "num_layers": 1},
            search={"n_trials": 1, "enqueue": [{"num_layers": True}]},
        ),
        says="search.enqueue[0].num_layers: got True",
    ),
    "dropout of one": _search(study(space={**SPACE, "dropout_rate": 1.0}), says="dropout_rate"),
    "space and params": _search(study(params=PARAMS), says="exactly one of"),
    "neither space nor params": _search(study(space=None), says="exactly one of"),
    "a range under params": _search(
        study(space=None, params={**PARAMS, "hidden_size": {"low": 1, "high": 2}}),
        says="a single value under `params:`",
    ),
    "data not a mapping": _search(study(data=[1]), says="data: got [1]"),
    "unknown data key": _search(section("data", colour=1), says="data.colour"),
    "data source s3": _search(section("data", source="s3"), says="data.source"),
    "csv source without a path": _search(study(data={"source": "csv"}), says="path"),
    "validation_split zero": _search(section("data", validation_split=0), says="validation"),
    "test_split too large": _search(section("data", test_split=0.9), says="data.test_split"),
    "vocabulary too small": _search(section("data", max_features=2), says="max_features"),
    "train_limit too small": _search(section("data", train_limit=3), says="train_limit"),
    "empty text column name": _search(section("data", text_column=""), says="text_column"),
    # --- data files -----------------------------------------------------------------------
    "missing data file": Case({"s.yaml": study()}, ["search", "s.yaml"], "no such data file"),
    "data file is a directory": Case(
        {"s.yaml": study(), "data.csv/x": ""}, ["search", "s.yaml"], "is a directory"
    ),
    "empty data file": _search(study(), "", says="empty file"),
    "header only": _search(study(), "review,sentiment\n", says="no data rows"),
    "misspelt text column": _search(
        section("data", text_column="reveiw"), says="data.text_column: no column 'reveiw'"
    ),
    "misspelt label column": _search(
        section("data", label_column="label"), says="data.label_column: no column 'label'"
    ),
    "one class only": _search(study(), "review,sentiment\na,x\nb,x\n", says="one class only"),
    "a class with one example": _search(
        study(), "review,sentiment\na,x\nb,x\nc,y\n", says="single example"
    ),
    "empty text": _search(
        study(), "review,sentiment\n,x\nb,x\nc,y\nd,y\n", says="line 2: column 'review'"
    ),
    "empty label": _search(study(), "review,sentiment\na,\n", says="column 'sentiment'"),
    "bad split value": _search(
        study(), "review,sentiment,split\na,x,dev\n", says="allowed: train, test"
    ),
    "no test rows": _search(
        study(),
        "review,sentiment,split\na,x,train\nb,y,train\nc,x,train\nd,y,train\n",
        says="no test rows",
    ),
    "named split column missing": _search(
        section("data", split_column="fold"), says="data.split_column: no column 'fold'"
    ),
    "too few rows to split": _search(
        study(), "review,sentiment\na,x\nb,y\nc,x\nd,y\n", says="cannot split"
    ),
    "binary data file": _search(study(), b"\x00\x01\x02\x03", says="binary file"),
    "non-UTF-8 data file": _search(
        study(), b"review,sentiment\ncaf\xe9,x\n", says="not UTF-8 text at byte"
    ),
    "bad gzip data": _search(study(), b"\x1f\x8b\x08\x00broken", says="unreadable gzip"),
    "unterminated quote": _search(
        study(), 'review,sentiment\n"open,x\n' + "a,b\n" * 3, says="data.csv"
    ),
    # --- command-line flags ---------------------------------------------------------------
    "n-trials zero": _search(study(), GOOD_CSV, "--n-trials", "0", says="--n-trials"),
    "n-trials text": _search(study(), GOOD_CSV, "--n-trials", "x", says="--n-trials"),
    "timeout NaN flag": _search(study(), GOOD_CSV, "--timeout", "nan", says="--timeout"),
    "timeout negative flag": _search(study(), GOOD_CSV, "--timeout", "-5", says="--timeout"),
    "workers zero": _search(study(), GOOD_CSV, "--workers", "0", says="--workers"),
    "unknown flag": _search(study(), GOOD_CSV, "--trials", "3", says="--trials"),
    "unknown command": Case({}, ["serach"], "invalid choice: 'serach'"),
    "no command": Case({}, [], "command"),
    "train a search space": Case(
        {"s.yaml": study(), "data.csv": GOOD_CSV},
        ["train", "s.yaml", "--out", "run"],
        "must have a single value",
    ),
    "train without --out": Case(
        {"s.yaml": study(space=None, params=PARAMS)}, ["train", "s.yaml"], "--out"
    ),
    "report metrics missing": Case(
        {}, ["report", "--study-name", "x", "--metrics", "m.json"], "m.json"
    ),
    "report metrics not JSON": Case(
        {"m.json": "{"}, ["report", "--study-name", "x", "--metrics", "m.json"], "not readable"
    ),
}


def _write(root: Path, files: dict[str, object]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            write_study(path.parent, filename=path.name, **content)  # type: ignore[arg-type]


@pytest.fixture(scope="module", autouse=True)
def _libraries_already_loaded() -> None:
    """Import every lstm_tune module, and with them what they import (Keras and TensorFlow's
    ~0.5 GB among it), so a case's memory growth is its own work, not a first import."""
    import lstm_tune

    for module in pkgutil.walk_packages(lstm_tune.__path__, "lstm_tune."):
        importlib.import_module(module.name)


def _peak_resident_mb() -> float:
    """This process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LSTM_TUNE_STORAGE", raising=False)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
    _write(tmp_path, case.files)
    before = _tree(tmp_path)
    peak_before = _peak_resident_mb()
    started = time.perf_counter()
    try:
        code = main(case.argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    elapsed = time.perf_counter() - started
    peak_growth = _peak_resident_mb() - peak_before
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert len(lines) == 1, f"expected one line, got: {err}"
    assert "Traceback" not in err
    assert case.says in lines[0], lines[0]
    assert len(lines[0]) < 400, "a one-line error stays short"
    created = {p for p in _tree(tmp_path) - before if not p.startswith("cache")}
    assert not created, f"bad input wrote {sorted(created)}"
    assert elapsed < MAX_SECONDS
    assert peak_growth < MAX_PEAK_GROWTH_MB, f"peak resident memory grew {peak_growth:.0f} MB"


def test_there_are_at_least_75_cases() -> None:
    assert len(CASES) >= 75


GZIPPED: Callable[[str], bytes] = lambda text: gzip.compress(text.encode())  # noqa: E731


def test_a_gzipped_data_file_with_a_bad_row_is_named_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path,
        {
            "s.yaml": section("data", path="d.csv.gz"),
            "d.csv.gz": GZIPPED("review,sentiment\na,\n"),
        },
    )
    assert main(["search", "s.yaml"]) == 2
    assert "d.csv.gz: line 2: column 'sentiment'" in capsys.readouterr().err
    assert not (tmp_path / "bad.db").exists()


STORAGE_CASES = {
    "in-memory SQLite": ("sqlite://", "in-memory SQLite"),
    "port not a number": ("postgresql+psycopg://u:pw@127.0.0.1:notaport/x", "not a valid URL"),
    "unsupported scheme": ("mysql://u@h/db", "not supported"),
    "not a URL": ("just words", "not a valid URL"),
    "bad heartbeat option": ("sqlite:///s.db?heartbeat_interval=x", "heartbeat_interval='x'"),
    "grace not above heartbeat": (
        "sqlite:///s.db?heartbeat_interval=10&grace_period=5",
        "grace_period=5 must be greater",
    ),
    "negative retry timeout": ("sqlite:///s.db?retry_timeout=-1", "retry_timeout='-1'"),
    "misspelt SQLite option": (
        "sqlite:///s.db?heartbeat_intervall=5",
        "option 'heartbeat_intervall' is not one of lstm-tune's",
    ),
}


@pytest.mark.parametrize("name", list(STORAGE_CASES))
def test_a_bad_storage_url_is_one_line_before_anything_is_read_or_written(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, says = STORAGE_CASES[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    _write(tmp_path, {"s.yaml": study(), "data.csv": GOOD_CSV})
    before = _tree(tmp_path)
    assert main(["search", "s.yaml", "--storage", url]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert "pw@" not in lines[0]  # a password is never echoed, even in a URL that is wrong
    assert _tree(tmp_path) == before  # checked before the data is read or a file written
