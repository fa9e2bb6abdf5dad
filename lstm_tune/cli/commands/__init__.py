"""Every ``lstm-tune`` subcommand, in the order ``lstm-tune --help`` lists them: the registry
the parser is built from. A new command is one :class:`~lstm_tune.cli.command.Command`
subclass in one of these modules, named in ``COMMANDS``."""

from __future__ import annotations

from lstm_tune.cli.command import Command
from lstm_tune.cli.commands.results import ExportBest, Finalize, Predict, Report, Train
from lstm_tune.cli.commands.schema import Schema
from lstm_tune.cli.commands.serve import Dashboard, StorageProxy
from lstm_tune.cli.commands.study import CreateStudy, Estimate, Search

__all__ = ["COMMANDS"]

COMMANDS: tuple[type[Command], ...] = (
    Search,
    CreateStudy,
    ExportBest,
    Finalize,
    Train,
    Dashboard,
    Report,
    Predict,
    Estimate,
    StorageProxy,
    Schema,
)
