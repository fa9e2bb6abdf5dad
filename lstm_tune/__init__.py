"""lstm-tune: hyperparameter search for Keras LSTM models on Optuna.

The public Python API is what ``__all__`` lists; everything else is internal and may move.
The command line (``lstm-tune``, :mod:`lstm_tune.cli`) is the other public surface.

Packages, each with one job, from the top layer down (``lint-imports`` checks that a package
imports only those below it):

- ``cli``: the ``lstm-tune`` commands; reads the environment, prints, maps errors to exit codes
- ``api``: the Python API (``search``, ``load_study_file``, ``SearchResult``) on the same code
- ``results``: reports, trial artifacts, the dashboard, the retrained model, inference
- ``tuning``: the search: study, sampler and pruner, trials, the budget, export and finalize
- ``runtime``: a worker's stop, the local pool, threads and memory per worker, progress
- ``config``: study files -> the validated, immutable ``StudySpec``
- ``tasks``: one module (or package) per job an LSTM does, behind ``tasks/base.py``'s contract
- ``training`` and ``storages``: fitting one model; where trials live
- ``types`` and ``errors``: plain data and the errors every layer shares
"""

from lstm_tune.api import SearchResult, load_study_file, search
from lstm_tune.config import StudySpec
from lstm_tune.errors import ConfigError, DataError, LstmTuneError, StorageError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "LstmTuneError",
    "SearchResult",
    "StorageError",
    "StudySpec",
    "__version__",
    "load_model",
    "load_study_file",
    "search",
]


def load_model(directory: str) -> object:
    """Load a model directory written by ``lstm-tune train``; ``.predict(raw inputs)`` uses it.

    See :mod:`lstm_tune.results.inference` (imported here on first use: it loads Keras).
    """
    from lstm_tune.results.inference import load_model as _load_model

    return _load_model(directory)
