"""How workers run on a machine: a worker's graceful stop, the local pool of worker processes,
threads per worker and memory per worker, and the progress lines a worker prints."""
