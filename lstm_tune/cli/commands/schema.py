"""``lstm-tune schema``: the JSON Schema of study files, for editors to check them with."""

from __future__ import annotations

import argparse

from lstm_tune.cli.command import EXIT_OK, Command

__all__ = ["Schema"]

# Indentation of the printed schema, for people reading it.
JSON_INDENT = 2


class Schema(Command):
    """``lstm-tune schema``: print the JSON Schema of study files (every task)."""

    name = "schema"
    help = "print the JSON Schema of study files"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """No flags: the schema covers every task."""

    def run(self, args: argparse.Namespace) -> int:
        """Print the schema."""
        import json

        from lstm_tune.config import json_schema

        print(json.dumps(json_schema(), indent=JSON_INDENT))
        return EXIT_OK
