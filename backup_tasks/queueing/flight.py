"""Single-flight in Redis: one run of an operation at a time, one per schedule slot.

Two triggers of the same job (two workers, a beat tick and an admin click,
a redelivered message, two beats started by mistake) must give one backup.
A run holds `lock:<operation>` while it works; a live worker renews it, so a
dead worker's lock expires after BACKUP_LOCK_TTL seconds. The lock names the
task and its process: a redelivered task that finds its earlier delivery's
process dead on this machine (a killed pool child) takes the lock over at once. A finished run
leaves `done:<operation>:<key>` behind, where the key is the schedule slot of
a beat-sent task or the task id of any other, so a late redelivery or a
second beat's copy of the same slot does nothing.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from celery import current_app

from backup_tasks import conf
from backup_tasks.core import processes
from backup_tasks.queueing.broker import client

PREFIX = "smartaquarium"
logger = logging.getLogger(__name__)

# Compare-and-act in one step: only the holder may renew or release.
_IF_HOLDER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call"
RENEW = _IF_HOLDER + "('pexpire', KEYS[1], ARGV[2]) end return 0"
RELEASE = _IF_HOLDER + "('del', KEYS[1]) end return 0"
# A lock whose holder is known dead, given to its successor (ARGV[2]) in one step.
TAKE_OVER = _IF_HOLDER + "('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 0"


def done_ttl() -> int:
    # Longer than Redis may take to redeliver a task, so a late copy still
    # finds its run done; and at least a day, for jobs sharing a slot.
    visibility = current_app.conf.broker_transport_options.get("visibility_timeout", 3600)
    return max(2 * int(visibility), 24 * 3600)


class Heartbeat:
    """Renews a lock every third of its TTL until stopped."""

    def __init__(self, key: str, token: str) -> None:
        self.key, self.token = key, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"renew {key}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ttl = conf.lock_ttl_seconds()
        while not self._stop.wait(ttl / 3):
            try:
                if not client().eval(RENEW, 1, self.key, self.token, ttl * 1000):
                    logger.warning("Lost the lock %s (Redis restarted?): the run goes on", self.key)
            except redis.RedisError as exc:
                logger.warning("Could not renew the lock %s: %s", self.key, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Skipped:
    reason: str


class Claim:
    """The right to run `operation` now; call finish() after success, release() after failure."""

    def __init__(self, operation: str, key: str, token: str, holder: str | None) -> None:
        self.operation, self.key, self.token = operation, key, token
        self.lock_key = f"{PREFIX}:lock:{operation}"
        self.done_key = f"{PREFIX}:done:{operation}:{key}"
        self.holder = holder  # the lock's value: "<task id> <host:pid:start>"; None: not locked
        self._heartbeat = Heartbeat(self.lock_key, holder) if holder else None

    def finish(self) -> None:
        try:
            client().set(
                self.done_key, f"task {self.token} at {datetime.now():%Y-%m-%d %H:%M:%S}", ex=done_ttl()
            )
        except redis.RedisError as exc:
            logger.warning("Could not mark %s done: %s", self.done_key, exc)
        self.release()

    def release(self) -> None:
        if self._heartbeat is None:
            return
        self._heartbeat.stop()
        self._heartbeat = None
        try:
            client().eval(RELEASE, 1, self.lock_key, self.holder)
        except redis.RedisError as exc:
            logger.warning("Could not release the lock %s (it expires by itself): %s", self.lock_key, exc)


def task_of(holder: str) -> str:
    """The task id in a lock's value."""
    return holder.split(" ", 1)[0]


def claim(operation: str, *, key: str, token: str) -> Claim | Skipped:
    """Claim one run of `operation` for `key`, or say why it must be skipped.

    `token` is the task id: a redelivered copy of a task that still holds the
    lock waits for it to finish or to die, then runs only if nothing was done.
    """
    r = client()
    lock_key = f"{PREFIX}:lock:{operation}"
    done_key = f"{PREFIX}:done:{operation}:{key}"
    mine = f"{token} {processes.this_process()}"
    waiting_for = None
    try:
        while True:
            if done := r.get(done_key):
                return Skipped(f"already done for this run ({done})")
            if r.set(lock_key, mine, nx=True, px=conf.lock_ttl_seconds() * 1000):
                if done := r.get(done_key):  # Finished between our two looks.
                    r.eval(RELEASE, 1, lock_key, mine)
                    return Skipped(f"already done for this run ({done})")
                return Claim(operation, key, token, mine)
            holder = r.get(lock_key)
            if holder is None:
                continue  # Released meanwhile: try again.
            if task_of(holder) != token:
                return Skipped(f"already running (task {task_of(holder)})")
            # Our own task id holds the lock: Redis redelivered this task
            # while an earlier delivery runs, or that delivery's process died
            # (a pool child killed) and its lock has not expired yet.
            owner = holder.partition(" ")[2]
            if processes.is_dead(owner):
                if r.eval(TAKE_OVER, 1, lock_key, holder, mine, conf.lock_ttl_seconds() * 1000):
                    logger.info(
                        "%s: the earlier delivery of task %s ended with its process (%s): taking over its lock",
                        operation.replace("_", " "),
                        token,
                        processes.describe(owner),
                    )
                    return Claim(operation, key, token, mine)
                continue
            if holder != waiting_for:
                waiting_for = holder
                logger.info(
                    "%s: waiting for an earlier delivery of task %s (%s) to finish, "
                    "or for its lock to expire within %d s",
                    operation.replace("_", " "),
                    token,
                    processes.describe(owner) if owner else "process unknown",
                    conf.lock_ttl_seconds(),
                )
            time.sleep(0.5)
    except redis.RedisError as exc:
        # A backup too many beats a backup missed: run without the lock.
        logger.warning("Could not check for a concurrent run of %s (%s): running anyway", operation, exc)
        return Claim(operation, key, token, None)


def running() -> dict[str, str] | None:
    """Operations whose lock a live task holds now ({operation: task id}); None when Redis cannot say."""
    try:
        r = client()
        keys = list(r.scan_iter(f"{PREFIX}:lock:*", count=100))
        return {key.split(":", 2)[2]: task_of(holder) for key in keys if (holder := r.get(key))}
    except redis.RedisError:
        return None
