"""Session-wide test setup: offline defaults, the real-server fixtures, a straggler check.

The fixtures live in `tests/support/` and are registered here once; `servers.py` has:
- `mlflow_server` (session): a running `mlflow server`; `.uri` is the tracking URI.
- `mlflow_tracking`: sets MLFLOW_TRACKING_URI to that server for one test; yields the URI.
- `gcs_server` (session): a running gcp-storage-emulator; `.endpoint`.
- `gcs_emulator`: a fresh bucket with STORAGE_EMULATOR_HOST set for one test;
  `.name`, `.root` (`gs://<bucket>`), `.emulator`.
- `kfp_local`: kfp.local with SubprocessRunner(use_venv=False); yields the pipeline root.
`local_profile.py` holds `local_profile` (session): the local profile's settings,
its warmed tiny base, generated data and the prepared UI sample.
"""

from __future__ import annotations

import os

import pytest

from tests.support.servers import kill_stray_children

# The shared fixtures, registered once for every test module.
pytest_plugins = [
    "tests.support.servers",
    "tests.support.local_profile",
    "tests.support.registry_support",
    "tests.support.train_data",
    "tests.support.html_tokenizer",
]

# Nothing under test may reach the network or phone home; each test opts into a server.
OFFLINE_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for _name, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process started by the tests outlived them (and kill it)."""
    stragglers = kill_stray_children()
    if not stragglers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the tests were still running (now killed):\n  " + (
        "\n  ".join(stragglers)
    )
    if reporter is not None:
        reporter.write(f"\n{message}\n", red=True, bold=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
