"""The search itself: a study made from a spec (space, sampler, pruner, queued configs), trials
run and pruned by a worker, the budget met exactly, the best config exported or finalized, and
a whole run on this machine (one worker or a local pool) by :func:`run.run_study`.

Named ``tuning`` so that ``lstm_tune.search`` can be the Python API's function. Nothing here
reads the environment or prints for the user; the CLI and the Python API call in.
"""
