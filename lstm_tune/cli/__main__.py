"""``python -m lstm_tune.cli``: how a pool starts its worker processes."""

import sys

from lstm_tune.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
