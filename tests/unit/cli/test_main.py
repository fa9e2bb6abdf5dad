"""lstm_tune.cli.main: the one place errors become exit codes, and standard output that goes
quiet when its reader has gone."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable

import pytest

from lstm_tune.cli import main
from lstm_tune.cli.command import EXIT_INTERRUPTED, EXIT_USAGE
from lstm_tune.cli.commands.schema import Schema
from lstm_tune.errors import ConfigError


def _raising(error: BaseException) -> Callable[[Schema, argparse.Namespace], int]:
    """A command's run that raises ``error``."""

    def run(self: Schema, args: argparse.Namespace) -> int:
        raise error

    return run


def test_an_error_the_user_can_fix_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        Schema, "run", _raising(ConfigError("data.path: got 'x'; expected a file"))
    )
    assert main(["schema"]) == EXIT_USAGE == 2
    assert capsys.readouterr().err == "lstm-tune: error: data.path: got 'x'; expected a file\n"


def test_debug_shows_the_traceback_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Schema, "run", _raising(ConfigError("bad")))
    with pytest.raises(ConfigError, match="bad"):
        main(["--debug", "schema"])


def test_ctrl_c_outside_a_search_is_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Schema, "run", _raising(KeyboardInterrupt()))
    assert main(["schema"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "lstm-tune: interrupted\n"


def test_any_other_error_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Schema, "run", _raising(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["schema"])


class _ClosedAfter(io.StringIO):
    """A pipe whose reader leaves after ``limit`` characters (``lstm-tune ... | head``)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.limit:
            raise BrokenPipeError
        return super().write(text)


def test_a_closed_pipe_quiets_standard_output_and_the_command_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe = _ClosedAfter(limit=10)
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["schema"]) == 0
    assert sys.stdout is pipe, "main puts standard output back"
    assert pipe.getvalue() == ""  # the schema is one write, larger than what the reader took


def test_a_closed_pipe_quiets_standard_error_and_the_exit_code_stays_the_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool's killed parent closes its workers' one pipe (both streams): a worker's warning
    must not turn its clean stop into a BrokenPipeError."""
    pipe = _ClosedAfter(limit=0)
    monkeypatch.setattr(sys, "stderr", pipe)
    monkeypatch.setattr(Schema, "run", _raising(ConfigError("bad field")))
    assert main(["schema"]) == EXIT_USAGE
    assert sys.stderr is pipe, "main puts standard error back"


def test_schema_prints_the_study_file_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$defs"]["SamplerSpec"]["properties"]["name"]["enum"][0] == "tpe"
