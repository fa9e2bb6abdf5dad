"""Text classification: labelled texts from a CSV (or Keras's IMDB), any number of classes.

``data`` loads, tokenizes, caches and splits; ``batching`` groups texts of similar length; ``task``
is the :class:`~lstm_tune.tasks.base.Task` that registers itself as ``text_classification``.
"""

from lstm_tune.tasks.text_classification import task as task  # registers the task
