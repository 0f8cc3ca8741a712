"""`uicap submit` / `uicap schedule` through the real kfp.Client against a local server that
checks every request against the v2beta1 REST schema shipped in kfp-server-api.

No `from __future__ import annotations` here: the probe pipeline below is built by KFP,
which reads its parameter annotations as objects (string annotations break kfp 2.17).
"""

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from pipelines import kfp_client
from pipelines.commands import kfp_ops
from pipelines.kfp_client import KfpError
from tests.support.kfp_api_server import PREDICATE_OPERATIONS, KfpApiServer

PIPELINE = "kfp-ops-probe"


@pytest.fixture
def server() -> Iterator[KfpApiServer]:
    with KfpApiServer() as running:
        yield running
        assert running.violations == []  # every test ends with a clean schema record


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real pipeline with one input of each parameter type."""
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11-slim")
    def echo(text: str, times: int, ratio: float, loud: bool, tags: list, options: dict) -> str:
        return f"{text * times} {ratio} {loud} {tags} {options}"

    @dsl.pipeline(name=PIPELINE)
    def probe(
        text: str = "hi",
        times: int = 1,
        ratio: float = 0.5,
        loud: bool = False,
        tags: list = ["a"],  # noqa: B006 (a pipeline default, compiled into the spec)
        options: dict = {"k": 1},  # noqa: B006
    ) -> None:
        echo(text=text, times=times, ratio=ratio, loud=loud, tags=tags, options=options)

    path = tmp_path_factory.mktemp("package") / "probe.yaml"
    compiler.Compiler().compile(probe, package_path=str(path))
    return path


def _submit(server: KfpApiServer, package: Path, version: str, **params: Any) -> Any:
    return kfp_client.submit_run(
        server.url,
        package,
        experiment="nightly",
        params=params,
        run_name=f"run {version}",
        pipeline_name=PIPELINE,
        version_name=version,
        service_account="runner",
    )


def _schedule(server: KfpApiServer, package: Path, version: str, **options: Any) -> Any:
    return kfp_client.schedule(
        server.url,
        package,
        cron=options.pop("cron", "0 0 3 * * *"),
        experiment="nightly",
        job_name=options.pop("job_name", "retrain"),
        pipeline_name=PIPELINE,
        version_name=version,
        **options,
    )


# --- submit ---------------------------------------------------------------------------------


def test_submit_creates_experiment_pipeline_version_and_a_run_with_overrides(
    server: KfpApiServer, package: Path
) -> None:
    run = _submit(server, package, "v1", times=3, loud=True)

    (experiment,) = server.experiments.values()
    assert experiment.display_name == "nightly" and run.experiment_id == experiment.experiment_id
    (pipeline,) = server.pipelines.values()
    assert pipeline.display_name == PIPELINE and run.pipeline_id == pipeline.pipeline_id
    (version,) = server.versions[pipeline.pipeline_id]
    assert (version.display_name, version.pipeline_version_id) == ("v1", run.version_id)
    assert version.pipeline_spec["pipelineInfo"]["name"] == PIPELINE
    stored = server.runs[run.run_id]
    assert stored.display_name == "run v1"
    assert stored.pipeline_version_reference.pipeline_version_id == run.version_id
    assert stored.runtime_config.parameters == {"times": 3, "loud": True}
    assert stored.service_account == "runner"
    assert run.url == f"{server.url}/#/runs/details/{run.run_id}"
    # The client reads back what it sent, typed as sent.
    fetched = kfp_client.connect(server.url).get_run(run.run_id)
    assert fetched.runtime_config.parameters == {"times": 3, "loud": True}
    assert server.violations == []


def test_a_second_submit_adds_a_version_to_the_same_pipeline(
    server: KfpApiServer, package: Path
) -> None:
    first = _submit(server, package, "v1")
    second = _submit(server, package, "v2", text="again")

    assert len(server.experiments) == 1 and len(server.pipelines) == 1
    assert first.pipeline_id == second.pipeline_id
    versions = server.versions[first.pipeline_id]
    assert [v.display_name for v in versions] == ["v1", "v2"]
    assert first.version_id != second.version_id
    pinned = server.runs[second.run_id].pipeline_version_reference
    assert pinned.pipeline_version_id == second.version_id


def test_a_version_name_already_taken_is_refused_with_the_servers_reason(
    server: KfpApiServer, package: Path
) -> None:
    _submit(server, package, "v1")
    with pytest.raises(KfpError, match=r"uploading version 'v1'.*409.*already has a version"):
        _submit(server, package, "v1")


def test_submit_sends_the_bearer_token(package: Path) -> None:
    with KfpApiServer(token="s3cret") as server:
        run = kfp_client.submit_run(
            server.url,
            package,
            experiment="nightly",
            params={},
            run_name="with token",
            pipeline_name=PIPELINE,
            version_name="v1",
            token="s3cret",
        )
        assert run.run_id in server.runs and server.violations == []


# --- parameters -----------------------------------------------------------------------------


def test_param_overrides_are_typed_as_the_pipeline_declares(package: Path) -> None:
    pairs = [
        "text=x=y",
        "times=3",
        "ratio=0.25",
        "loud=true",
        'tags=["b", "c"]',
        'options={"k": 2}',
    ]
    assert kfp_client.parse_params(package, pairs) == {
        "text": "x=y",
        "times": 3,
        "ratio": 0.25,
        "loud": True,
        "tags": ["b", "c"],
        "options": {"k": 2},
    }


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("tims=3", r"unknown pipeline parameter 'tims'.*takes: loud, options, ratio, tags"),
        ("times=1.5", r"times is an integer, and '1.5' is not"),
        ("loud=maybe", r"loud is a boolean"),
        ("tags={}", r"tags is a JSON list"),
        ("ratio=nan", r"ratio is a finite number"),
        ("times", r"expected key=value"),
    ],
)
def test_bad_param_overrides_name_the_key(package: Path, pair: str, message: str) -> None:
    with pytest.raises(KfpError, match=message):
        kfp_client.parse_params(package, [pair])


def test_an_unknown_param_is_refused_before_any_request(
    server: KfpApiServer, package: Path
) -> None:
    with pytest.raises(KfpError, match="unknown pipeline parameter 'tims'"):
        _submit(server, package, "v1", tims=3)
    with pytest.raises(KfpError, match="unknown pipeline parameter 'tims'"):
        _schedule(server, package, "v1", params={"tims": 3})
    assert server.requests == []


# --- schedule -------------------------------------------------------------------------------


def test_schedule_creates_a_recurring_run_on_the_latest_version(
    server: KfpApiServer, package: Path
) -> None:
    result = _schedule(server, package, "v1", params={"times": 2}, service_account="runner")

    assert result.action == "created"
    (job,) = server.recurring_runs.values()
    assert job.display_name == "retrain"
    assert job.trigger.cron_schedule.cron == "0 0 3 * * *"
    assert job.trigger.periodic_schedule is None
    assert job.no_catchup is True
    assert job.max_concurrency == "1"
    assert job.mode == "ENABLE" and job.status == "ENABLED"
    assert job.pipeline_version_reference.pipeline_id == result.pipeline_id
    assert job.pipeline_version_reference.pipeline_version_id is None  # latest, always
    assert job.runtime_config.parameters == {"times": 2}
    assert job.service_account == "runner"
    info = result.schedule
    assert info.follows_latest and info.cron == "0 0 3 * * *" and info.enabled

    # A later upload is what the next scheduled run starts from.
    newer = _schedule(server, package, "v2", params={"times": 2}, service_account="runner")
    assert newer.action == "kept"
    triggered = server.trigger(info.recurring_run_id)
    assert triggered.pipeline_version_reference.pipeline_version_id == newer.version_id
    assert server.violations == []


def test_rescheduling_never_duplicates_the_recurring_run(
    server: KfpApiServer, package: Path
) -> None:
    first = _schedule(server, package, "v1")
    again = _schedule(server, package, "v2")
    assert again.action == "kept"
    assert again.schedule.recurring_run_id == first.schedule.recurring_run_id
    assert len(server.recurring_runs) == 1

    kfp_client.pause_schedule(server.url, "retrain")
    changed = _schedule(server, package, "v3", cron="0 30 4 * * MON-FRI", max_concurrency=2)
    assert changed.action == "replaced"
    (job,) = server.recurring_runs.values()
    assert job.recurring_run_id == changed.schedule.recurring_run_id
    assert (job.trigger.cron_schedule.cron, job.max_concurrency) == ("0 30 4 * * MON-FRI", "2")
    assert job.mode == "DISABLE"  # a paused schedule stays paused when its definition changes


def test_pause_resume_and_list(server: KfpApiServer, package: Path) -> None:
    created = _schedule(server, package, "v1").schedule
    _schedule(server, package, "v2", job_name="weekly", cron="0 0 5 * * SUN")

    paused = kfp_client.pause_schedule(server.url, "retrain")
    assert not paused.enabled and paused.status == "DISABLED"
    assert server.recurring_runs[created.recurring_run_id].mode == "DISABLE"
    listed = {info.name: info for info in kfp_client.list_schedules(server.url)}
    assert set(listed) == {"retrain", "weekly"}
    assert not listed["retrain"].enabled and listed["weekly"].enabled
    assert listed["weekly"].cron == "0 0 5 * * SUN" and listed["weekly"].follows_latest

    resumed = kfp_client.resume_schedule(server.url, "retrain")
    assert resumed.enabled and resumed.status == "ENABLED"
    assert server.recurring_runs[created.recurring_run_id].mode == "ENABLE"


def test_pausing_an_unknown_schedule_names_it_and_the_known_ones(
    server: KfpApiServer, package: Path
) -> None:
    _schedule(server, package, "v1")
    with pytest.raises(KfpError, match=r"no recurring run is named 'nightly'.*are: retrain"):
        kfp_client.pause_schedule(server.url, "nightly")


def test_a_five_field_cron_is_refused_before_any_request(
    server: KfpApiServer, package: Path
) -> None:
    with pytest.raises(KfpError, match=r"has 5 fields; KFP's cron has 6: second minute hour"):
        _schedule(server, package, "v1", cron="0 3 * * *")
    assert server.requests == []


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 0 25 * * *", r"the hour field '25' is out of range 0-23"),
        ("0 0 3 * FOO *", r"the month field 'FOO' is not a number"),
        ("? 0 3 * * *", r"the second field '\?' uses '\?'"),
        ("0 */0 3 * * *", r"the minute field '\*/0' has step '0'"),
        ("0 0 3 * * * *", r"has 7 fields"),
    ],
)
def test_bad_cron_fields_are_named(cron: str, message: str) -> None:
    with pytest.raises(KfpError, match=message):
        kfp_client.check_cron(cron)


@pytest.mark.parametrize(
    "cron", ["0 0 3 * * *", "0 */15 9-17 ? * MON-FRI", "30 5 0 1,15 JAN-JUN ?"]
)
def test_good_crons_pass(cron: str) -> None:
    assert kfp_client.check_cron(f"  {cron} ") == cron


# --- the server's schema check can fail -----------------------------------------------------


def _raw(server: KfpApiServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_server_rejects_what_the_schema_does_not_allow() -> None:
    with KfpApiServer() as server:
        status, body = _raw(
            server, "POST", "/apis/v2beta1/experiments", {"display_name": "x", "colour": "red"}
        )
        assert status == 400 and "V2beta1Experiment has no field 'colour'" in body["message"]
        status, _ = _raw(server, "POST", "/apis/v2beta1/experiments", {"display_name": 5})
        assert status == 400
        status, _ = _raw(server, "GET", "/apis/v2beta1/experiments?page_size=ten")
        assert status == 400
        status, _ = _raw(server, "GET", "/apis/v2beta1/pipelines?colour=red")
        assert status == 400
        job = {"display_name": "j", "mode": "ON", "max_concurrency": 1}
        status, body = _raw(server, "POST", "/apis/v2beta1/recurringruns", job)
        assert status == 400
        assert "'ON' is not one of RecurringRunMode" in body["message"]
        assert "max_concurrency: expected str" in body["message"]
        status, _ = _raw(server, "GET", "/apis/v2beta1/nothing-here")
        assert status == 400
        assert len(server.violations) == 6
        assert server.experiments == {}  # nothing rejected was stored

        status, body = _raw(server, "POST", "/apis/v2beta1/experiments", {"display_name": "x"})
        assert status == 200 and set(body) >= {"experiment_id", "display_name", "created_at"}
        assert len(server.violations) == 6


def test_an_int64_sent_as_a_json_number_breaks_the_schema(package: Path) -> None:
    """Why `schedule` sends max_concurrency as "1": the swagger types int64 as a string,
    and kfp.Client.create_recurring_run sends a number."""
    from kfp_server_api.exceptions import ApiException

    with KfpApiServer() as server:
        client = kfp_client.connect(server.url)
        experiment_id = kfp_client.ensure_experiment(client, "nightly")
        with pytest.raises(ApiException) as refused:
            client.create_recurring_run(
                experiment_id, "inline", cron_expression="0 0 3 * * *",
                max_concurrency=1, pipeline_package_path=str(package),
            )  # fmt: skip
        assert refused.value.status == 400
        assert server.violations == [
            "POST /apis/v2beta1/recurringruns: recurring_run.max_concurrency: expected str, "
            "got a number 1"
        ]


def test_the_server_answers_other_client_calls_like_the_real_one(package: Path) -> None:
    with KfpApiServer() as server:
        client = kfp_client.connect(server.url)
        uploaded = client.upload_pipeline(str(package), "uploaded")
        client.upload_pipeline_version(str(package), "second", pipeline_id=uploaded.pipeline_id)
        newest_first = client.list_pipeline_versions(
            uploaded.pipeline_id, sort_by="created_at desc"
        )
        # An uploaded pipeline's first version carries the pipeline's name.
        assert [v.display_name for v in newest_first.pipeline_versions] == ["second", "uploaded"]
        version = newest_first.pipeline_versions[0]
        fetched = client.get_pipeline_version(uploaded.pipeline_id, version.pipeline_version_id)
        assert fetched.pipeline_spec["pipelineInfo"]["name"] == PIPELINE

        for name in ("a", "b", "c"):
            kfp_client.ensure_experiment(client, name)
        first = client.list_experiments(page_size=2, sort_by="display_name desc")
        rest = client.list_experiments(page_size=2, page_token=first.next_page_token)
        assert [e.display_name for e in first.experiments] == ["c", "b"]
        assert first.total_size == 3 and len(rest.experiments) == 1 and not rest.next_page_token
        assert server.violations == []


def test_the_servers_filter_enum_numbers_match_what_kfp_client_sends() -> None:
    from kfp.client.client import _FILTER_OPERATIONS

    assert {PREDICATE_OPERATIONS[number]: number for number in _FILTER_OPERATIONS.values()} == (
        _FILTER_OPERATIONS
    )


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    # A wide console, so that no table cell or message is folded mid-word.
    monkeypatch.setattr(kfp_ops, "console", Console(width=200))
    monkeypatch.setattr(kfp_ops, "errors", Console(width=200, stderr=True))
    app = typer.Typer()
    app.command("submit")(kfp_ops.submit)
    app.command("schedule")(kfp_ops.schedule)
    return app


def _invoke(cli: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_uicap_submit_compiles_the_gke_pipeline_and_runs_it(
    server: KfpApiServer, cli: typer.Typer
) -> None:
    code, output = _invoke(
        cli, "submit", "--host", server.url, "--param", "nproc_per_node=2", "--run-name", "r1"
    )
    assert code == 0, output
    (run,) = server.runs.values()
    assert run.display_name == "r1"
    assert run.runtime_config.parameters == {"nproc_per_node": 2}
    assert run.service_account == "uicap-pipeline"  # from the gke profile
    (experiment,) = server.experiments.values()
    assert experiment.display_name == "uicap-retraining"
    (pipeline,) = server.pipelines.values()
    (version,) = server.versions[pipeline.pipeline_id]
    assert version.pipeline_spec["platform_spec"]["platforms"]["kubernetes"]
    assert f"submitted run {run.run_id}" in output


def test_uicap_submit_refuses_an_unknown_param_before_any_request(
    server: KfpApiServer, cli: typer.Typer
) -> None:
    code, output = _invoke(cli, "submit", "--host", server.url, "--param", "nproc_per_nod=2")
    assert code == 2
    assert "unknown pipeline parameter 'nproc_per_nod'" in output
    assert server.requests == []


def test_uicap_schedule_create_rerun_list_pause_resume(
    server: KfpApiServer, cli: typer.Typer
) -> None:
    code, output = _invoke(cli, "schedule", "--host", server.url, "--cron", "0 0 3 * * *")
    assert code == 0, output
    assert "created recurring run uicap-retrain-schedule" in output
    code, output = _invoke(cli, "schedule", "--host", server.url, "--cron", "0 0 3 * * *")
    assert code == 0 and "unchanged recurring run uicap-retrain-schedule" in output
    (job,) = server.recurring_runs.values()
    assert job.no_catchup and job.max_concurrency == "1"
    assert job.pipeline_version_reference.pipeline_version_id is None
    (pipeline,) = server.pipelines.values()
    assert len(server.versions[pipeline.pipeline_id]) == 2

    code, output = _invoke(cli, "schedule", "--host", server.url, "--list")
    assert code == 0 and "uicap-retrain-schedule" in output and "latest" in output
    code, output = _invoke(cli, "schedule", "--host", server.url, "--pause", job.display_name)
    assert code == 0 and "is now paused" in output and job.mode == "DISABLE"
    code, output = _invoke(cli, "schedule", "--host", server.url, "--resume", job.display_name)
    assert code == 0 and "is now enabled" in output and job.mode == "ENABLE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 3 * * *"], "has 5 fields"),
        (["--pause", "a", "--list"], "give exactly one of --cron, --pause, --resume, --list"),
        ([], "(got none)"),
    ],
)
def test_uicap_schedule_usage_errors_make_no_request(
    server: KfpApiServer, cli: typer.Typer, args: list[str], message: str
) -> None:
    code, output = _invoke(cli, "schedule", "--host", server.url, *args)
    assert code == 2 and message in output
    assert server.requests == []


def test_uicap_schedule_names_an_unknown_schedule(server: KfpApiServer, cli: typer.Typer) -> None:
    code, output = _invoke(cli, "schedule", "--host", server.url, "--resume", "nope")
    assert code == 1 and "no recurring run is named 'nope'; there are none" in output


def test_an_unreachable_host_is_a_clear_error(cli: typer.Typer) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, output = _invoke(cli, "schedule", "--host", f"http://127.0.0.1:{port}", "--list")
    assert code == 1
    assert f"connecting to the KFP API at http://127.0.0.1:{port}: cannot reach" in output
