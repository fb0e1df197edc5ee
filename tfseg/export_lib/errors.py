"""The exception types of the export library, and a helper that quiets absl logging."""

import contextlib
import logging


class ExportError(ValueError):
    """An export that cannot be done as asked: bad option, unsupported op, missing runtime, ...

    The message is meant for the user as is (``python -m tfseg.export`` prints it and exits 1).
    """


class VerificationError(ExportError):
    """The artifact was built but its outputs differ from the Keras model's beyond the
    thresholds."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class NotApplicable(ExportError):
    """The option asks for a part the model does not have, or for units this CPU does not have
    (bf16); ``--format=auto`` skips such a candidate instead of counting it as failed."""


@contextlib.contextmanager
def quiet_absl(level=logging.ERROR):
    """Raise the ``absl`` and ``tensorflow`` loggers' level for a block: the converters and
    ``tf.saved_model.save`` log many INFO/WARNING lines (signature renames, sharding,
    deprecated-path notes) that say nothing to a user."""
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    old = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, value in zip(loggers, old):
            logger.setLevel(value)
