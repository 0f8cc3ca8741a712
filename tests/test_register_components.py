"""The register, gate and promote KFP components: their interface, and a real kfp.local run.

The pipeline imports a model artifact, its evaluation and its data, registers the model,
gates it, and promotes it under `dsl.If` on the gate's decision: a passing candidate
becomes champion, a failing one is registered with its reasons and promote never runs.
"""

# No `from __future__ import annotations` here: the pipeline defined in a test needs its
# parameter annotations as objects, as KFP reads them.

import json
from pathlib import Path

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model

from components.base_image import BASE_IMAGE
from components.register import tags as T
from components.register.client import connect
from components.register.component import champion_op, gate_op, promote_op, register_op
from components.register.config import GateConfig, RegistryConfig
from tests.support.registry_support import (
    Tracking,
    evaluation_for,
    make_artifact,
    weights_sha,
    write_json,
)

# kfp.local runs the task in this environment whatever the image; it warns that it does.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning")


@pytest.mark.parametrize("component", [champion_op, register_op, gate_op, promote_op])
def test_components_install_nothing_and_leave_the_image_to_the_pipeline(component) -> None:
    container = component.component_spec.implementation.container
    assert container.image == BASE_IMAGE
    assert "pip install" not in " ".join(container.command or [])


def test_gate_outputs_a_boolean_for_dsl_if() -> None:
    outputs = gate_op.component_spec.outputs
    assert outputs["Output"].type == "Boolean"
    assert outputs["decision"].type == "system.Artifact@0.0.1"


@pytest.mark.parametrize(("quality", "promoted"), [(0.6, True), (0.3, False)])
def test_register_gate_promote_pipeline_runs_under_kfp_local(
    kfp_local: Path,
    tracking: Tracking,
    registry_settings: RegistryConfig,
    registry_base: Path,
    registry_data: Path,
    tmp_path: Path,
    quality: float,
    promoted: bool,
) -> None:
    artifact = make_artifact(tmp_path / "model", registry_base, seed=31)
    evaluation = write_json(
        tmp_path / "evaluation" / "evaluation.json",
        evaluation_for(weights_sha(artifact), quality, baseline_quality=0.3),
    )
    registry_json = registry_settings.model_dump_json()
    gate_json = GateConfig().model_dump_json()

    @dsl.pipeline(name="register-local")
    def register_local(model_uri: str, evaluation_uri: str, data_uri: str):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=False)
        scored = dsl.importer(artifact_uri=evaluation_uri, artifact_class=Artifact, reimport=False)
        data = dsl.importer(artifact_uri=data_uri, artifact_class=Dataset, reimport=False)
        registered = register_op(
            model=model.output,
            evaluation=scored.output,
            data=data.output,
            pipeline_run_id="kfp-local-run",
            registry=registry_json,
        )
        decided = gate_op(
            evaluation=scored.output,
            version=registered.output,
            registry=registry_json,
            gate=gate_json,
        )
        with dsl.If(decided.outputs["Output"] == True):  # noqa: E712 (a KFP condition)
            promote_op(
                evaluation=scored.output,
                version=registered.output,
                registry=registry_json,
                gate=gate_json,
            )

    register_local(
        model_uri=str(artifact), evaluation_uri=str(evaluation.parent), data_uri=str(registry_data)
    )

    registry = connect(registry_settings)
    assert [str(v.version) for v in registry.versions()] == ["1"]
    tags = registry.version("1").tags
    assert tags[T.PIPELINE_RUN_ID] == "kfp-local-run"
    gate_decisions = list(kfp_local.glob("register-local-*/gate-op/decision"))
    assert len(gate_decisions) == 1
    decision = json.loads(gate_decisions[0].read_text())
    promote_decisions = list(kfp_local.glob("register-local-*/promote-op/decision"))
    champion = champion_op(registry=registry_json).output
    if promoted:
        assert champion == f"models:/{registry.model_name}/1"
        assert registry.aliases() == {"champion": "1"}
        assert decision["outcome"] == "awaiting promotion"
        assert json.loads(promote_decisions[0].read_text())["outcome"] == "promoted"
        assert tags[T.GATE_OUTCOME] == "promoted"
    else:
        assert champion == ""
        assert registry.aliases() == {"challenger": "1"}
        assert decision["outcome"] == "rejected" and not promote_decisions
        assert tags[T.GATE_DECISION] == "rejected"
