"""Run ``lstm-tune ARGS`` in this process at wall-clock time ``AT``: ``_start_at.py AT ARGS``.

Processes started one after another reach the database tens of milliseconds apart; waiting
for a shared instant after the imports makes them race for real, as workers that compose
starts together do.
"""

from __future__ import annotations

import sys
import time

from lstm_tune.cli import main

if __name__ == "__main__":
    at = float(sys.argv[1])
    time.sleep(max(0.0, at - time.time()))
    sys.exit(main(sys.argv[2:]))
