"""The guide's activity log, BACKUP_DIR/scheduled_backup.log, rotated by size."""

import logging
from datetime import datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

from backup_tasks import conf
from backup_tasks.core import layout

LOGGER_NAME = "backup_tasks"
_handler: RotatingFileHandler | None = None


def _plant_time(seconds: float):
    return datetime.fromtimestamp(seconds, conf.plant_zone()).timetuple()


def run_logger() -> logging.Logger:
    """The backup logger, writing to the log file of the current BACKUP_DIR."""
    global _handler
    logger = logging.getLogger(LOGGER_NAME)
    path = layout.log_path().resolve()
    if _handler is not None and Path(_handler.baseFilename) == path:
        return logger
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler.close()
        _handler = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            path, maxBytes=conf.log_max_bytes(), backupCount=conf.log_backup_count(), encoding="utf-8"
        )
    except OSError:
        # An unwritable backup folder is reported by the operation itself.
        return logger
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    formatter.converter = _plant_time
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    _handler = handler
    return logger
