"""An advisory lock around moving the champion alias, built on what MLflow does atomically.

MLflow has no compare-and-set for aliases: two promotions that both read "champion is v3"
and then both move it leave whichever wrote last. What MLflow does do atomically is
create a registered model: the name is unique in its database, so of two concurrent
creates exactly one succeeds. The lock is therefore a registered model named
`<model>.promotion-lock`, created to acquire and deleted to release, with the holder
and a token in its tags. Every uicap promotion, manual promotion and rollback takes it.

What it does not cover, honestly:
- a writer that bypasses uicap (the MLflow UI, a raw client) is not stopped by it; the
  promotion re-reads the alias after moving it and fails loudly if another value won;
- a holder that stalls for longer than `ttl_s` (a frozen process, a partition) can have
  its lock broken by the next promoter while it still believes it holds it. Before the
  alias is moved the holder checks its token is still there, which narrows that window
  to a single request; the TTL is compared with the server's creation time, so clocks
  more than a few seconds apart shorten or lengthen it.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from components.register.client import Registry, RegistryError, describe_error

log = logging.getLogger("uicap.register")

LOCK_SUFFIX = ".promotion-lock"
TOKEN_TAG = "uicap.lock.token"
HOLDER_TAG = "uicap.lock.holder"
ACQUIRED_TAG = "uicap.lock.acquired_at"


class LockTimeoutError(RegistryError):
    """Another promotion held the lock for longer than this one would wait."""


class LockLostError(RegistryError):
    """The lock was broken (its holder stalled past the TTL): nothing was moved."""


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PromotionLock:
    registry: Registry
    holder: str
    token: str

    @property
    def name(self) -> str:
        return lock_name(self.registry)

    def still_held(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            found = self.registry.call(
                "checking the promotion lock",
                lambda: self.registry.client.get_registered_model(self.name),
            )
        except MlflowException:
            return False
        return found.tags.get(TOKEN_TAG) == self.token

    def ensure_held(self) -> None:
        if not self.still_held():
            raise LockLostError(
                f"the promotion lock {self.name} was broken while {self.holder} held it "
                "(stalled past its TTL?); nothing was moved, run the promotion again"
            )


def lock_name(registry: Registry) -> str:
    return registry.model_name + LOCK_SUFFIX


@contextmanager
def promotion_lock(
    registry: Registry,
    holder: str | None = None,
    *,
    timeout_s: float = 120.0,
    ttl_s: float = 300.0,
    poll_s: float = 0.25,
) -> Iterator[PromotionLock]:
    """Hold the model's promotion lock for the body; waits up to `timeout_s` for it."""
    from mlflow.exceptions import MlflowException

    client = registry.client
    lock = PromotionLock(registry, holder or default_holder(), uuid.uuid4().hex)
    name = lock.name
    tags = {
        TOKEN_TAG: lock.token,
        HOLDER_TAG: lock.holder,
        ACQUIRED_TAG: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            registry.call(
                "taking the promotion lock",
                lambda: client.create_registered_model(
                    name, tags=tags, description="uicap: held while the champion alias moves"
                ),
            )
            break
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                # MLflow's SQL store answers a lost insert race by reading the winner's
                # lock; when the winner has already released it, that read is all we get.
                continue
            if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        try:
            current = registry.call(
                "reading the promotion lock", lambda: client.get_registered_model(name)
            )
        except MlflowException:
            continue  # released between our create and our read: try again at once
        if current.tags.get(TOKEN_TAG) == lock.token:
            break  # our create went through; its reply was lost and the retry collided
        age_s = time.time() - (current.creation_timestamp or 0) / 1000
        if age_s > ttl_s:
            log.warning(
                "breaking the promotion lock of %s, held for %.0fs (> %.0fs)",
                current.tags.get(HOLDER_TAG, "?"),
                age_s,
                ttl_s,
            )
            _delete(registry, name)
            continue
        if time.monotonic() > deadline:
            raise LockTimeoutError(
                f"the promotion lock {name} is held by {current.tags.get(HOLDER_TAG, '?')} "
                f"since {current.tags.get(ACQUIRED_TAG, '?')}; gave up after {timeout_s:.0f}s"
            )
        time.sleep(poll_s * (0.5 + random.random()))
    try:
        yield lock
    finally:
        try:
            if lock.still_held():
                _delete(registry, name)
        except Exception as error:
            log.warning(
                "could not release the promotion lock %s (%s); it expires after %.0fs",
                name,
                describe_error(error),
                ttl_s,
            )


def _delete(registry: Registry, name: str) -> None:
    from mlflow.exceptions import MlflowException

    def delete() -> None:
        try:
            registry.client.delete_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise

    registry.call("releasing the promotion lock", delete)
