"""The task queue (Redis, CELERY_BROKER_URL) as the backup code talks to it."""

import redis
from celery import current_app
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url
from redis.backoff import NoBackoff
from redis.retry import Retry

# What publishing a task raises when the queue cannot be reached.
QUEUE_ERRORS = (OperationalError, redis.RedisError, OSError)

_clients: dict[str, redis.Redis] = {}


def url() -> str:
    """The broker URL without its password, fit for a message."""
    return maybe_sanitize_url(current_app.conf.broker_url)


def unreachable(exc: BaseException) -> str:
    """'the task queue at redis://... is unreachable (Error 111 ... Connection refused.)'"""
    return f"the task queue at {url()} is unreachable ({exc})"


def client() -> redis.Redis:
    """A Redis client for the broker's server, failing within seconds when it is down."""
    broker_url = current_app.conf.broker_url
    if broker_url not in _clients:
        _clients[broker_url] = redis.Redis.from_url(
            broker_url,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
    return _clients[broker_url]
