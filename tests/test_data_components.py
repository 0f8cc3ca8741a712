"""The ingest and prepare KFP components: their interface, and real runs under kfp.local."""

# No `from __future__ import annotations` here: the pipeline defined in a test needs its
# parameter annotations as objects, as KFP reads them.

import inspect
import json
from pathlib import Path

import pytest
from kfp import dsl

from components.base_image import BASE_IMAGE
from components.demo.samples import write_sample_dataset
from components.ingest import IngestManifest, ingest
from components.ingest.component import ingest_op
from components.prepare import PrepareManifest, prepare
from components.prepare.component import prepare_op
from components.prepare.config import PrepareConfig
from components.prepare.token_count import BaseTokenizer
from tests.support.data_records import record, save_dataset

# kfp.local runs the task in this environment whatever the image; it warns that it does.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("sample") / "ui", "ui", records=24)


def _defaults(function: object) -> dict[str, object]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_component_defaults_match_the_plain_functions() -> None:
    ingest_defaults = _defaults(ingest)
    op_defaults = _defaults(ingest_op.python_func)
    assert op_defaults["split"] == ingest_defaults["split"]
    assert op_defaults["max_quarantine_fraction"] == ingest_defaults["max_quarantine_fraction"]
    # Prepare's defaults are written once, in PrepareConfig: the op and the plain
    # function take the config whole and repeat none of its numbers.
    assert _defaults(prepare_op.python_func) == {
        "config": "",
        "reuse_root": "",
        "base_model": "",
        "base_revision": "",
    }
    assert _defaults(prepare)["config"] is None
    assert PrepareConfig.from_parameter("") == PrepareConfig()
    assert set(inspect.signature(prepare).parameters) >= {"input_dir", "output", "config"}
    assert not {"max_image_side", "workers"} & set(inspect.signature(prepare).parameters)


@pytest.mark.parametrize("component", [ingest_op, prepare_op])
def test_components_install_nothing_and_leave_the_image_to_the_pipeline(component) -> None:
    container = component.component_spec.implementation.container
    assert container.image == BASE_IMAGE
    assert "pip install" not in " ".join(container.command or [])
    outputs = component.component_spec.outputs
    assert {spec.type for spec in outputs.values()} == {
        "system.Dataset@0.0.1",
        "system.Metrics@0.0.1",
    }


def test_ingest_component_runs_under_kfp_local(kfp_local: Path, sample: Path) -> None:
    task = ingest_op(dataset=str(sample))

    data = task.outputs["data"]
    manifest = IngestManifest.read(Path(data.path))
    assert manifest.counts.kept == 24
    assert data.metadata["fingerprint"] == manifest.fingerprint
    assert data.metadata["resolved_revision"] == manifest.source.resolved_revision
    assert task.outputs["counts"].metadata == {
        "records_in": 24,
        "records_kept": 24,
        "records_quarantined": 0,
    }
    assert Path(data.path).is_relative_to(kfp_local)


def test_ingest_component_fails_the_task_on_a_broken_source(
    kfp_local: Path, tmp_path: Path
) -> None:
    rows = [record(0), record(1, image=b"junk"), record(2, bbox=[1.0])]
    source = save_dataset(tmp_path / "broken", rows)
    with pytest.raises(RuntimeError, match="FAILURE"):
        ingest_op(dataset=str(source))
    (manifest_path,) = kfp_local.glob("ingest-op-*/ingest-op/data/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["counts"] == {"in": 3, "kept": 1, "quarantined": 2}


def test_ingest_then_prepare_pipeline_runs_under_kfp_local(
    kfp_local: Path, sample: Path, html_tokenizer: BaseTokenizer
) -> None:
    @dsl.pipeline(name="data-local")
    def data_local(dataset: str, base_model: str):
        ingested = ingest_op(dataset=dataset)
        config = PrepareConfig(max_image_side=256, workers=2).to_parameter()
        prepare_op(ingested=ingested.outputs["data"], config=config, base_model=base_model)

    data_local(dataset=str(sample), base_model=html_tokenizer.source)

    (prepared,) = kfp_local.glob("data-local-*/prepare-op/prepared")
    manifest = PrepareManifest.read(prepared)
    assert manifest.counts.kept == 24
    assert manifest.settings.max_image_side == 256  # the config parameter arrived whole
    assert manifest.settings.html_tokenizer == html_tokenizer.identity()
    assert all((prepared / f"{split}.json").is_file() for split in ("train", "val", "test"))
    outputs = json.loads((prepared.parent / "executor_output.json").read_text())
    (counts,) = outputs["artifacts"]["counts"]["artifacts"]
    assert counts["metadata"]["records_in"] == 24
    assert sum(counts["metadata"][f"records_{s}"] for s in ("train", "val", "test")) == 24
    (dataset,) = outputs["artifacts"]["prepared"]["artifacts"]
    assert dataset["metadata"]["fingerprint"] == manifest.fingerprint
