"""Names and numbers shared by the storage modules and their callers, importing nothing.

The study user attributes lstm-tune keeps in a storage: the study file a study was created
from (so export-best and every worker read the same spec), and the shared trial budget. Here,
not in the search package, so commands that only read a study do not import the training stack
(TensorFlow). And the gRPC proxy's defaults, which the CLI shows in ``--help`` without loading
Optuna or SQLAlchemy.
"""

from __future__ import annotations

__all__ = ["BUDGET_ATTR", "DEFAULT_PROXY_PORT", "DEFAULT_PROXY_THREADS", "SPEC_ATTR"]

SPEC_ATTR = "lstm_tune_spec"
BUDGET_ATTR = "lstm_tune_budget"
# The port `lstm-tune storage-proxy` listens on unless told otherwise (Optuna's examples use it).
DEFAULT_PROXY_PORT = 13000
# gRPC calls the proxy serves at once, i.e. the most database connections it holds.
DEFAULT_PROXY_THREADS = 10
