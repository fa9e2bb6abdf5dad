"""Names of the study user attributes lstm-tune keeps in a storage.

The study file a study was created from (so export-best and every worker read the same spec),
and the shared trial budget. Here, not in the search package, so commands that only read a
study do not import the training stack (TensorFlow).
"""

from __future__ import annotations

__all__ = ["BUDGET_ATTR", "SPEC_ATTR"]

SPEC_ATTR = "lstm_tune_spec"
BUDGET_ATTR = "lstm_tune_budget"
