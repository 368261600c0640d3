"""Settings for smartAquarium.

Every tunable comes from the environment; the defaults run on SQLite with no
.env file. `.env.example` lists every variable.
"""

import os
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import dj_database_url

from smartAquarium.secret_key import secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_header(name: str) -> tuple[str, str] | None:
    """A request header and the value that marks HTTPS, as Django wants it: HTTP_X_FORWARDED_PROTO,https."""
    parts = env_list(name, "")
    if not parts:
        return None
    if len(parts) != 2 or not parts[0].startswith("HTTP_"):
        raise ValueError(
            f"{name} must be a header and its value, e.g. HTTP_X_FORWARDED_PROTO,https; got {env_str(name, '')!r}"
        )
    return parts[0], parts[1]


DEBUG = env_bool("DEBUG", False)
# No shared default key: with DEBUG off and no SECRET_KEY, a random key is made
# once in SECRET_KEY_FILE (mode 0600) and every process uses it from then on.
SECRET_KEY_FILE = Path(env_str("SECRET_KEY_FILE", str(BASE_DIR / "secret.key")))
SECRET_KEY = secret_key(configured=env_str("SECRET_KEY", ""), debug=DEBUG, path=SECRET_KEY_FILE)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

# Behind HTTPS (README): off by default, so the admin also works over plain HTTP
# on a plant network; docker-compose.yml and the systemd unit turn them on.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# The header by which the reverse proxy says a request came over HTTPS; it must
# overwrite that header on every request it forwards.
SECURE_PROXY_SSL_HEADER = env_header("SECURE_PROXY_SSL_HEADER")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Browsers remember HSTS for this many seconds and then refuse plain HTTP to the
# host: the operator's decision once HTTPS works (README), never a default.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Reverse proxies in front of the web server, each appending the address it saw
# to X-Forwarded-For. 0: the client is the connection's address, and
# X-Forwarded-For (anyone can send one) is ignored.
REVERSE_PROXY_COUNT = env_int("REVERSE_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "readings",
    "backup_tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smartAquarium.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "smartAquarium.wsgi.application"

# The sensor loop writes every 2 s while backups and exports read. WAL lets
# readers and the writer run side by side; IMMEDIATE transactions take the
# write lock up front so a writer waits (busy timeout) instead of failing
# with "database is locked" when it upgrades a read transaction.
SQLITE_OPTIONS = {
    "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20),
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Admin logins (django-axes): AXES_FAILURE_LIMIT failed attempts lock out that
# user name, and separately that address, until AXES_COOLOFF_MINUTES have passed
# since the last attempt (0: until an administrator unlocks it). A success does
# not wipe earlier failures: it would let anyone with an account reset the
# counter of the address they guess from.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
_cooloff_minutes = env_int("AXES_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes) if _cooloff_minutes > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "backup_tasks.web.logins.client_ip"
AXES_LOCKOUT_CALLABLE = "backup_tasks.web.logins.lockout_response"

LANGUAGE_CODE = "en-us"
# The plant's zone: readings are stored in UTC and shown, exported and
# stamped in this zone.
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# Backups (read through backup_tasks.conf).
BACKUP_DIR = Path(env_str("BACKUP_DIR", str(BASE_DIR / "backups")))
BACKUP_KEEP_DAYS = env_int("BACKUP_KEEP_DAYS", 30)
# Grandfather-father-son for snapshots: any count above 0 replaces the days
# rule for them (exports keep following BACKUP_KEEP_DAYS).
BACKUP_KEEP_HOURLY = env_int("BACKUP_KEEP_HOURLY", 0)
BACKUP_KEEP_DAILY = env_int("BACKUP_KEEP_DAILY", 0)
BACKUP_KEEP_WEEKLY = env_int("BACKUP_KEEP_WEEKLY", 0)
BACKUP_KEEP_MONTHLY = env_int("BACKUP_KEEP_MONTHLY", 0)
# Scheduled exports stop this many seconds before now, so a reading stamped a
# moment before it reached the database is never left behind a window.
BACKUP_EXPORT_LAG = env_int("BACKUP_EXPORT_LAG", 60)
# none, gzip or zstd: compresses snapshots and exports (verify and restore read all).
BACKUP_COMPRESSION = env_str("BACKUP_COMPRESSION", "none")

# The backup history (README: Backup history): every run's verified files go
# into a deduplicated, encrypted restic repository when restic is installed.
# Empty: BACKUP_DIR/repository; "off": no history, plain files only.
BACKUP_REPOSITORY = env_str("BACKUP_REPOSITORY", "")
# The repository's key, made on first use (mode 0600). Keep a copy away from the plant.
BACKUP_REPOSITORY_PASSWORD_FILE = Path(
    env_str("BACKUP_REPOSITORY_PASSWORD_FILE", str(BASE_DIR / "backup-repository.key"))
)
# A second repository that leaves the building (folder, sftp:, s3:, rest:); empty: none.
BACKUP_OFFSITE_REPOSITORY = env_str("BACKUP_OFFSITE_REPOSITORY", "")
BACKUP_OFFSITE_MAX_AGE_HOURS = env_int("BACKUP_OFFSITE_MAX_AGE_HOURS", 26)
BACKUP_OFFSITE_TIMEOUT = env_int("BACKUP_OFFSITE_TIMEOUT", 1800)
# Plain snapshot files kept in database/ once they are in the history.
BACKUP_KEEP_PLAIN = env_int("BACKUP_KEEP_PLAIN", 3)
# Restore points kept beyond BACKUP_KEEP_DAYS of hourly ones, per repository.
BACKUP_HISTORY_KEEP_DAILY = env_int("BACKUP_HISTORY_KEEP_DAILY", 90)
BACKUP_HISTORY_KEEP_WEEKLY = env_int("BACKUP_HISTORY_KEEP_WEEKLY", 52)
BACKUP_HISTORY_KEEP_MONTHLY = env_int("BACKUP_HISTORY_KEEP_MONTHLY", 24)
BACKUP_OFFSITE_KEEP_DAILY = env_int("BACKUP_OFFSITE_KEEP_DAILY", BACKUP_HISTORY_KEEP_DAILY)
BACKUP_OFFSITE_KEEP_WEEKLY = env_int("BACKUP_OFFSITE_KEEP_WEEKLY", BACKUP_HISTORY_KEEP_WEEKLY)
BACKUP_OFFSITE_KEEP_MONTHLY = env_int("BACKUP_OFFSITE_KEEP_MONTHLY", BACKUP_HISTORY_KEEP_MONTHLY)

# Seconds after which a run still marked "running" counts as abandoned.
BACKUP_RUN_TIMEOUT = env_int("BACKUP_RUN_TIMEOUT", 3 * 3600)

# Failed runs are mailed to ADMINS ("Name <addr>, addr2"); none set, no mail.
ADMINS = [parseaddr(item) for item in env_list("ADMINS", "")]
SERVER_EMAIL = env_str("SERVER_EMAIL", "smartaquarium@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_SUBJECT_PREFIX = "[smartAquarium] "

# Seconds a backup task may run: at the soft limit it stops and removes its
# unfinished files, at the hard limit the worker kills it. A year of readings
# backs up in minutes; an hour leaves room for a slow SD card.
BACKUP_TIME_LIMIT = env_int("BACKUP_TIME_LIMIT", 3600)
# Seconds before the first retry of a transient failure (doubled each time).
BACKUP_RETRY_DELAY = env_int("BACKUP_RETRY_DELAY", 60)
# Seconds a dead worker's single-flight lock outlives it (a live worker renews it).
BACKUP_LOCK_TTL = env_int("BACKUP_LOCK_TTL", 60)

# Celery: backups, exports and cleanup run in a worker process, scheduled by
# django-celery-beat from the database (edit the schedules in admin).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TIMEZONE = TIME_ZONE
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_BEAT_SCHEDULER = "backup_tasks.queueing.beat:PlantScheduler"
# Save each periodic task's last run as soon as it is sent (admin shows it,
# and a standby beat taking over starts from it).
CELERY_BEAT_SYNC_EVERY = 1
# No result backend by default: nobody waits for a backup's result, and an
# admin click must never wait on one. Each task's JSON summary goes to the
# worker log, and what it did to scheduled_backup.log and the run history.
# Set one (e.g. redis://127.0.0.1:6379/1) to keep results and export progress.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_RESULT_EXPIRES = None
# A task is acknowledged only when it has finished, and given back to the
# queue when its worker dies, so a crash never loses a backup...
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# ...and a worker holds no more than the task it runs, so a waiting message
# is not redelivered behind a long backup.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = BACKUP_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = BACKUP_TIME_LIMIT * 9 // 10
# Redis gives an unacknowledged task to another worker after this many
# seconds: it must be longer than the longest task, or a running backup is
# delivered a second time (the single-flight lock keeps that copy waiting).
_visibility_timeout = env_int("CELERY_VISIBILITY_TIMEOUT", 2 * BACKUP_TIME_LIMIT)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout,
    # Look for tasks of dead workers in proportion to the timeout.
    "unacked_restore_interval": max(1, min(10, _visibility_timeout // 5)),
    "unacked_restore_throttle": 1,
    # Fail fast when Redis is gone or hangs; a healthy local Redis answers in
    # milliseconds, and the worker's blocking read waits only 1 s at a time.
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
}
# With Redis down, "Run backup now" in admin must answer in about 2 s with a
# message, not hang the request: connect quickly and retry a publish briefly.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "smartAquarium.log_format.OneLineClientErrors",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
    },
    "loggers": {
        # backup_tasks.storage.log adds the rotating scheduled_backup.log handler.
        "backup_tasks": {"handlers": ["null"], "level": "INFO", "propagate": False},
        # Each failed run, once more, for a handler of your own (syslog, a chat hook); by
        # default nowhere: scheduled_backup.log already has it, and ADMINS get a mail.
        "backup_tasks.alerts": {"handlers": ["null"], "level": "ERROR", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
