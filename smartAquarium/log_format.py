"""The console log's format: one line per refused request, a traceback only for real errors."""

import copy
import logging


class OneLineClientErrors(logging.Formatter):
    """Leave out the traceback Django attaches to a refused request (a 4xx response).

    django.request logs every PermissionDenied, BadRequest and SuspiciousOperation
    with exc_info, so the web server's log showed a full traceback for each 403: an
    everyday event (a user without a permission) that reads like a crash. The line
    itself says what happened; a 5xx keeps its traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        status = getattr(record, "status_code", None)
        if record.exc_info and isinstance(status, int) and 400 <= status < 500:
            record = copy.copy(record)  # other handlers still get the record as it was
            record.exc_info = record.exc_text = None
        return super().format(record)
