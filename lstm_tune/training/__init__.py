"""Training one model: the shared LSTM stack every task builds on, the fit loop that reports
checkpoints to the pruner, and the pre-flight estimates of a config's memory and time."""
