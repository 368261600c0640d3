"""The project's settings for the test process itself.

With DEBUG off and no SECRET_KEY the settings make a key file, by default in the
checkout; tests never write there, so this run's key file lives in a folder of
its own, which subprocesses started without a key file of their own inherit.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_folder = tempfile.mkdtemp(prefix="smartaquarium-test-key-")
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
os.environ.pop("SECRET_KEY", None)
os.environ["SECRET_KEY_FILE"] = str(Path(_folder) / "secret.key")
# The backup history is off for every test but those of the history, which turn
# it on with a repository and key of their own (tests/test_history.py).
os.environ["BACKUP_REPOSITORY"] = "off"
os.environ["BACKUP_REPOSITORY_PASSWORD_FILE"] = str(Path(_folder) / "backup-repository.key")

from smartAquarium.settings import *  # noqa: E402, F403
