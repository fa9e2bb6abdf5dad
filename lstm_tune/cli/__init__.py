"""The ``lstm-tune`` command line: the only layer that reads the environment, prints for the
user and maps errors to exit codes (0 ok, 2 a problem the user can fix, 3 gave up, 130
interrupted).

Modules: ``main`` (the entry point and the parser), ``command`` (what a command is, exit
codes), ``commands`` (the registry and the commands by group), ``options`` (shared flags) and
``env`` (the environment and defaults).
"""

import os

# Quiet TensorFlow's C++ start-up chatter before anything imports it; users can override.
# Here, in the package, because every way in (`lstm-tune`, `python -m lstm_tune.cli`, an
# import of any module below) runs this first.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lstm_tune.cli.main import main  # noqa: E402  (after the variable above)

__all__ = ["main"]
