#!/usr/bin/env python
"""Django's command-line utility for smartAquarium."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartAquarium.settings")
    from django.core.management import execute_from_command_line

    from smartAquarium.secret_key import SecretKeyError

    try:
        execute_from_command_line(sys.argv)
    except SecretKeyError as error:
        sys.exit(str(error))  # One line saying what to do, not a traceback.


if __name__ == "__main__":
    main()
