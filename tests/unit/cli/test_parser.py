"""The parser built from the command registry (lstm_tune.cli.main, .commands, .options): every
command in ``--help``'s order, each flag's help as users read it, shared flags declared once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstm_tune.cli.commands import COMMANDS
from lstm_tune.cli.main import build_parser
from lstm_tune.storages import DEFAULT_PROXY_PORT

CLI_SOURCES = Path(__file__).resolve().parents[3] / "lstm_tune" / "cli"
# The fewest arguments each command parses with.
MINIMAL_ARGS = {
    "search": ["s.yaml"],
    "create-study": ["s.yaml"],
    "export-best": ["--study-name", "s"],
    "finalize": ["--study-name", "s"],
    "train": ["best.yaml", "--out", "run"],
    "dashboard": [],
    "report": ["--study-name", "s"],
    "predict": ["model"],
    "estimate": ["s.yaml"],
    "storage-proxy": [],
    "schema": [],
}
STUDY_DIR_RULE = "storage URL (default: $LSTM_TUNE_STORAGE or sqlite:///<study dir>/<name>.db)"
STUDIES_RULE = "storage URL (default: $LSTM_TUNE_STORAGE or sqlite:///studies/<name>.db)"
STORAGE_HELP = {
    "search": STUDY_DIR_RULE,
    "create-study": STUDY_DIR_RULE,
    "export-best": STUDIES_RULE,
    "finalize": STUDIES_RULE,
    "report": STUDIES_RULE,
    "dashboard": "storage URL (default: $LSTM_TUNE_STORAGE)",
    "storage-proxy": "the database's URL (default: $LSTM_TUNE_STORAGE); workers use grpc://",
}


def _help(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """``lstm-tune ARGV --help`` as printed on a terminal wide enough for one line a flag."""
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _flag_help(text: str, flag: str) -> str:
    match = re.search(rf"^  {re.escape(flag)} [A-Z_]+ +(.+)$", text, re.M)
    assert match, f"{flag} not in:\n{text}"
    return match.group(1)


def test_help_lists_the_registry_in_its_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [command.name for command in COMMANDS]
    assert names == list(MINIMAL_ARGS)
    assert "{" + ",".join(names) + "}" in _help([], capsys, monkeypatch)


@pytest.mark.parametrize("name", list(MINIMAL_ARGS))
def test_each_command_parses_to_its_own_handler(name: str) -> None:
    args = build_parser().parse_args([name, *MINIMAL_ARGS[name]])
    assert args.command == name and args.handler.name == name


@pytest.mark.parametrize("name", list(STORAGE_HELP))
def test_storage_help_states_the_one_default_rule(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help([name], capsys, monkeypatch)
    assert _flag_help(text, "--storage") == STORAGE_HELP[name]
    # The shared flags come first, right after --help, as they did when declared by hand:
    # a stored study's name, else the storage.
    first = "--study-name" if STORAGE_HELP[name] == STUDIES_RULE else "--storage"
    assert re.findall(r"^  (-\S+)", text, re.M)[:2] == ["-h,", first]


def test_commands_without_storage_have_no_storage_flag() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "best.yaml", "--out", "x", "--storage", "u"])
    assert set(STORAGE_HELP) | {"train", "predict", "estimate", "schema"} == set(MINIMAL_ARGS)


def test_storage_is_declared_once_in_the_cli_sources() -> None:
    sources = "".join(path.read_text() for path in CLI_SOURCES.rglob("*.py"))
    assert sources.count('"--storage"') == 1


def test_the_proxy_port_default_is_the_storages_constant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build_parser().parse_args(["storage-proxy"]).port == DEFAULT_PROXY_PORT
    text = _help(["storage-proxy"], capsys, monkeypatch)
    assert _flag_help(text, "--port") == f"port (default {DEFAULT_PROXY_PORT})"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["search", "s.yaml", "--workers", "0"], "argument --workers: 0 is not >= 1"),
        (["search", "s.yaml", "--timeout", "0.5"], "0.5 is not a finite number >= 1"),
        (["predict", "m", "--temperature", "0"], "0 is not a finite number > 0"),
        (["export-best"], "the following arguments are required: --study-name"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and err.endswith(" (see --help)\n")
    assert err.startswith(f"lstm-tune {argv[0]}: error: ")


def test_workers_takes_auto_in_any_case() -> None:
    args = build_parser().parse_args(["search", "s.yaml", "--workers", " AUTO "])
    assert args.workers == "auto"
    assert build_parser().parse_args(["search", "s.yaml"]).workers == 1
