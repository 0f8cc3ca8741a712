"""The MLflow registry the pipeline talks to: found from settings or env, failing fast and clearly.

- A step's tracking URI is its `RegistryConfig`'s, else `MLFLOW_TRACKING_URI` (the
  registry URI: the config's, else `MLFLOW_REGISTRY_URI` when the config names no
  tracking URI either, else the tracking URI). A command line puts its `--tracking-uri`
  first and the environment before the profile's (`command_line_registry`).
- Credentials never pass through here: MLflow reads `MLFLOW_TRACKING_USERNAME` /
  `MLFLOW_TRACKING_PASSWORD` or `MLFLOW_TRACKING_TOKEN` from the environment itself, and
  every URI this module prints has its user info and query removed.
- MLflow retries each HTTP request for about four minutes by default. A pipeline step
  should rather fail within a bounded time and be retried as a whole, so the request
  retries are capped (unless the environment already sets them) and the first contact is
  retried here with exponential backoff; after that comes `RegistryUnavailableError`,
  which names the URI.
- A SQLite or file store keeps its artifacts next to the database, never in `./mlruns`
  under whatever folder the command happened to run in.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from components.register.config import RegistryConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("uicap.register")

T = TypeVar("T")

# MLflow's own per-request retries, unless the environment sets them: short, so that our
# bounded backoff (not MLflow's four minutes) decides how long an outage is waited out.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
SERVED_SCHEMES = ("http", "https", "databricks")
_TRANSIENT = re.compile(
    r"Max retries exceeded|Connection (refused|aborted|reset)|NewConnectionError|"
    r"RemoteDisconnected|timed? ?out|failed to return code 200|database is locked|"
    r"Temporary failure in name resolution|Service Unavailable|Bad Gateway",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class RegistryUnavailableError(RuntimeError):
    """The tracking server could not be reached within the retry budget."""


class RegistryError(RuntimeError):
    """The registry refused or failed an operation; the message says which and why."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long an unreachable registry is waited for: `attempts` tries, backoff in between."""

    attempts: int = 4
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delays(self) -> list[float]:
        """The pauses between attempts: doubling from `first_delay_s`, with jitter."""
        pauses = []
        for attempt in range(self.attempts - 1):
            base = min(self.max_delay_s, self.first_delay_s * 2**attempt)
            pauses.append(base * (0.75 + 0.5 * random.random()))
        return pauses


def display_uri(uri: str) -> str:
    """`uri` without user info, query or fragment: safe to print or to put in an error."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if not parts.scheme or parts.scheme in ("file", "sqlite"):
        return uri.split("?", 1)[0]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str) -> str:
    """`text` with any `user:password@` inside a URL removed (MLflow errors quote URLs)."""
    return _USERINFO.sub("", text)


def is_transient(error: BaseException) -> bool:
    """A connection-level failure that may pass (server down, restarting, overloaded)."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        if _TRANSIENT.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def resolve_uris(config: RegistryConfig) -> tuple[str, str]:
    """(tracking URI, registry URI) of `config`: its own, else the environment's."""
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise RegistryError(
            "no MLflow tracking URI: set registry.tracking_uri or MLFLOW_TRACKING_URI"
        )
    from_env = None if config.tracking_uri else os.environ.get("MLFLOW_REGISTRY_URI")
    return uri, config.registry_uri or from_env or uri


def command_line_registry(
    config: RegistryConfig, tracking_uri: str | None = None
) -> RegistryConfig:
    """The config a command uses: `--tracking-uri`, else $MLFLOW_TRACKING_URI, else the
    profile's; likewise $MLFLOW_REGISTRY_URI before the profile's registry URI."""
    if tracking_uri:
        return config.model_copy(update={"tracking_uri": tracking_uri})
    return config.model_copy(
        update={
            "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri,
            "registry_uri": os.environ.get("MLFLOW_REGISTRY_URI") or config.registry_uri,
        }
    )


def local_artifact_root(uri: str) -> str | None:
    """Where a database store's artifacts go: `mlartifacts/` beside the SQLite file."""
    parts = urlsplit(uri)
    if parts.scheme in SERVED_SCHEMES:
        return None
    if parts.scheme == "sqlite":
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return (database.parent / "mlartifacts").resolve().as_uri()
    if parts.scheme in ("", "file"):
        return (Path(parts.path or uri) / "mlartifacts").resolve().as_uri()
    return None


def _cap_http_retries() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass
class Registry:
    """One registered model on one tracking store: the client plus the names the pipeline uses."""

    client: MlflowClient
    tracking_uri: str
    registry_uri: str
    model_name: str
    experiment_name: str
    champion_alias: str
    challenger_alias: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def display(self) -> str:
        return display_uri(self.tracking_uri)

    def call(self, what: str, operation: Callable[[], T]) -> T:
        """Run `operation`, retrying connection failures with backoff, then fail naming the URI."""
        delays = self.retry.delays()
        started = time.monotonic()
        for attempt in range(self.retry.attempts):
            try:
                return operation()
            except Exception as error:
                if not is_transient(error):
                    raise
                if attempt == len(delays):
                    elapsed = time.monotonic() - started
                    raise RegistryUnavailableError(
                        f"MLflow tracking server {self.display} is unreachable: {what} failed "
                        f"{self.retry.attempts} times over {elapsed:.0f}s "
                        f"(last error: {scrub(_first_line(error))})"
                    ) from None
                log.warning(
                    "%s: %s unreachable (%s); retrying in %.1fs",
                    what,
                    self.display,
                    scrub(_first_line(error)),
                    delays[attempt],
                )
                time.sleep(delays[attempt])
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- reads ------------------------------------------------------------------------------

    def alias_version(self, alias: str) -> str | None:
        """The version `alias` points at now, or None (no alias, or no registered model)."""
        from mlflow.exceptions import MlflowException

        def read() -> str | None:
            try:
                return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
            except MlflowException as error:
                if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

        return self.call(f"reading alias {alias!r}", read)

    def champion(self) -> str | None:
        return self.alias_version(self.champion_alias)

    def challenger(self) -> str | None:
        return self.alias_version(self.challenger_alias)

    def version(self, version: str | int) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        def read() -> ModelVersion:
            try:
                return self.client.get_model_version(self.model_name, str(version))
            except MlflowException as error:
                if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise RegistryError(
                        f"{self.model_name} has no version {version} in {self.display}"
                    ) from None
                raise

        return self.call(f"reading version {version}", read)

    def versions(self, filter_tags: dict[str, str] | None = None) -> list[ModelVersion]:
        """Every version of the model (optionally those with the given tags), oldest first."""
        clauses = [f"name = '{_quote(self.model_name)}'"]
        for key, value in (filter_tags or {}).items():
            clauses.append(f"tags.`{key}` = '{_quote(value)}'")
        query = " and ".join(clauses)

        def search() -> list[ModelVersion]:
            found: list[ModelVersion] = []
            token = None
            while True:
                page = self.client.search_model_versions(
                    query, max_results=200, page_token=token, order_by=["version_number ASC"]
                )
                found.extend(page)
                token = page.token
                if not token:
                    return sorted(found, key=lambda v: int(v.version))

        return self.call("listing versions", search)

    def aliases(self) -> dict[str, str]:
        """alias -> version for the registered model (empty when it does not exist yet)."""
        from mlflow.exceptions import MlflowException

        def read() -> dict[str, str]:
            try:
                model = self.client.get_registered_model(self.model_name)
            except MlflowException as error:
                if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return {}
                raise
            return {alias: str(version) for alias, version in model.aliases.items()}

        return self.call("reading aliases", read)

    # --- writes -----------------------------------------------------------------------------

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.call(
                f"tagging version {version}",
                lambda key=key, value=value: self.client.set_model_version_tag(
                    self.model_name, version, key, value
                ),
            )

    def set_alias(self, alias: str, version: str) -> None:
        self.call(
            f"setting alias {alias!r}",
            lambda: self.client.set_registered_model_alias(self.model_name, alias, version),
        )

    def delete_alias(self, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        def delete() -> None:
            try:
                self.client.delete_registered_model_alias(self.model_name, alias)
            except MlflowException as error:
                if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise

        self.call(f"deleting alias {alias!r}", delete)

    def ensure_registered_model(self, description: str) -> None:
        from mlflow.exceptions import MlflowException

        def create() -> None:
            try:
                self.client.create_registered_model(self.model_name, description=description)
            except MlflowException as error:
                if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise

        self.call("creating the registered model", create)

    def ensure_experiment(self) -> str:
        """The experiment's id, creating it (artifacts beside a database store) if needed."""
        from mlflow.exceptions import MlflowException

        def find_or_create() -> str:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(
                    self.client.create_experiment(
                        self.experiment_name,
                        artifact_location=local_artifact_root(self.tracking_uri),
                    )
                )
            except MlflowException as error:  # created by a concurrent step meanwhile
                if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    raise
                again = self.client.get_experiment_by_name(self.experiment_name)
                if again is None:
                    raise
                return str(again.experiment_id)

        return self.call("finding the experiment", find_or_create)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def connect(
    config: RegistryConfig | None = None,
    *,
    retry: RetryPolicy | None = None,
    probe: bool = True,
) -> Registry:
    """A `Registry` for the config's model, after checking the store answers (with retries)."""
    _cap_http_retries()
    from mlflow import MlflowClient

    names = config or RegistryConfig()
    uri, registry_uri = resolve_uris(names)
    registry = Registry(
        client=MlflowClient(tracking_uri=uri, registry_uri=registry_uri),
        tracking_uri=uri,
        registry_uri=registry_uri,
        model_name=names.model_name,
        experiment_name=names.experiment_name,
        champion_alias=names.champion_alias,
        challenger_alias=names.challenger_alias,
        retry=retry or RetryPolicy(),
    )
    if probe:
        registry.call(
            "connecting",
            lambda: registry.client.search_registered_models(max_results=1),
        )
    return registry


def describe_error(error: BaseException) -> str:
    """One line for a CLI: the error's first line, any credentials in URLs removed."""
    return scrub(_first_line(error))
