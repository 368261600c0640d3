"""Plain Python the rest builds on: names and folders, errors, units, retention and crontab arithmetic."""
