"""`uicap evaluate`: generation, comparison with significance, evaluation.json, CLI and KFP.

A tiny MiniCPM-V 4.6 is built from the test data's text; the candidate is LoRA-trained on
it for real by the training recipe. Summaries follow from the element type and text in the
prompt, so a few dozen CPU steps teach the candidate enough to beat the random base.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from components.captioner.weights import directory_sha256
from components.evaluate.bootstrap import bootstrap_cider
from components.evaluate.config import EvaluateConfig
from components.evaluate.diversity import caption_diversity
from components.evaluate.generation import generate_captions
from components.evaluate.models import (
    ModelReferenceError,
    parse_registry_uri,
    resolve_model,
    split_revision,
)
from components.evaluate.result import (
    COMPARED_METRICS,
    EVALUATION_FILE,
    REPORT_FILE,
    Evaluation,
    load_evaluation,
)
from components.evaluate.run import evaluate
from components.evaluate.scoring import pair_captions, score_captions
from components.prepare.conversations import read_split
from pipelines.cli import app
from tests.support.train_data import prompt_for, tiny_base, write_general, write_prepared

# Dataset strings that must reach the report as text, never as markup.
HOSTILE_SCRIPT = "<script>document.title='pwned by script'</script>"
HOSTILE_ONERROR = "<img src=x onerror=\"document.title='pwned by onerror'\">"
HOSTILE_ONLOAD = "<svg onload=\"document.title='pwned by onload'\"></svg>"
HOSTILE_IDS = ("test-hostile-html", "test-hostile-type")
TRAIN_STEPS = 30
MAX_NEW_TOKENS = 12


def add_hostile_records(prepared: Path) -> None:
    """Two test records whose HTML, summary and element type carry script-bearing markup."""
    records = json.loads((prepared / "test.json").read_text())
    script_html = f"<div>{HOSTILE_SCRIPT}<button>Pay</button></div>"
    rows = [
        (HOSTILE_IDS[0], "button", script_html, f"Pays the order {HOSTILE_ONERROR} now."),
        (
            HOSTILE_IDS[1],
            f"link{HOSTILE_ONLOAD}",
            "<a href='#'>Help</a>",
            f"Opens help.{HOSTILE_SCRIPT}",
        ),
    ]
    for record_id, element_type, html, summary in rows:
        image_path = Path("images") / "test" / f"{record_id}.png"
        image = Image.new("RGB", (84, 56), (245, 245, 245))
        ImageDraw.Draw(image).rectangle((16, 12, 68, 44), outline=(255, 0, 255), width=4)
        image.save(prepared / image_path)
        records.append(
            {
                "id": record_id,
                "image": str(image_path),
                "conversations": [
                    {
                        "role": "user",
                        "content": "<image>\n" + prompt_for("click", element_type, "Pay", html),
                    },
                    {"role": "assistant", "content": summary},
                ],
                "element_type": element_type,
                "external_id": f"ext-{record_id}",
                "screen_id": "screen-hostile",
            }
        )
    (prepared / "test.json").write_text(json.dumps(records, indent=1))


def train_candidate(data: Path, base: Path, output: Path, steps: int = TRAIN_STEPS) -> Path:
    """LoRA (plus the LM head, which a random base cannot do without) via the real recipe."""
    from components.train.config import TrainConfig
    from components.train.recipe import RunInputs, TrainRecipe

    config = TrainConfig.model_validate(
        {
            "lora": {"modules_to_save": ["lm_head"]},
            "optim": {"lr": 3e-3},
            "batch": {"batch_size": 8, "grad_accum": 1, "num_workers": 0, "max_length": 400},
            "schedule": {"max_steps": steps, "eval_steps": steps // 2, "save_steps": steps},
            "generation": {"max_new_tokens": MAX_NEW_TOKENS},
        }
    )
    inputs = RunInputs(
        data=data, base_model=str(base), output=output, tracking=False, progress=False
    )
    return TrainRecipe(config, inputs).run()


@pytest.fixture(scope="module")
def ui_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_prepared(tmp_path_factory.mktemp("eval-ui"), train=48, val=8, test=20)
    add_hostile_records(root)
    return root


@pytest.fixture(scope="module")
def general_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_general(tmp_path_factory.mktemp("eval-general"), train=8, val=4)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, ui_data: Path, general_data: Path) -> Path:
    return tiny_base(tmp_path_factory.mktemp("eval-base"), ui_data, general_data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ui_data: Path, base: Path) -> Path:
    return train_candidate(ui_data, base, tmp_path_factory.mktemp("eval-candidate"))


@pytest.fixture(scope="module")
def learned(
    tmp_path_factory: pytest.TempPathFactory, ui_data: Path, general_data: Path, trained: Path
) -> tuple[Evaluation, Path]:
    """The trained candidate against its own base (no champion), with the general holdout."""
    output = tmp_path_factory.mktemp("eval-learned")
    result = evaluate(
        ui_data,
        str(trained),
        general_dir=general_data,
        output_dir=output,
        config=EvaluateConfig(batch_size=8, max_new_tokens=MAX_NEW_TOKENS),
    )
    return result, output


# --- significance -------------------------------------------------------------------------


def test_a_candidate_that_learned_beats_the_base_with_a_cider_ci_above_zero(
    learned: tuple[Evaluation, Path],
) -> None:
    result, _ = learned
    assert result.baseline_role == "base" and result.roles == ["candidate", "base"]
    cider = result.comparison["CIDEr"]
    assert cider.resamples >= 1000 and cider.confidence == 0.95
    assert cider.delta > 0 and cider.ci_low > 0, cider
    assert cider.ci_low <= cider.delta <= cider.ci_high
    similarity = result.comparison["semantic_similarity"]
    assert similarity.ci_low > 0, similarity
    # The candidate answers in the summaries' words; the random base does not.
    rows = result.predictions.test
    assert np.mean([row.CIDEr["candidate"] for row in rows]) > np.mean(
        [row.CIDEr["base"] for row in rows]
    )


@pytest.fixture
def registered_champion(mlflow_tracking: str, trained: Path, tmp_path: Path) -> str:
    """The trained artifact as version 1 of a registered model, aliased `champion`."""
    import mlflow

    copy = tmp_path / "champion"
    copy.mkdir()
    shutil.copytree(trained / "adapter", copy / "adapter")
    shutil.copy(trained / "uicap_model.json", copy)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"evaluate-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifacts(str(copy), artifact_path="captioner")
    name = f"captioner-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/captioner", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "champion", version.version)
    return f"models:/{name}@champion"


def test_a_model_against_itself_gives_zero_deltas_via_the_cli_and_the_registry(
    registered_champion: str, ui_data: Path, trained: Path, tmp_path: Path
) -> None:
    output = tmp_path / "self"
    args = ["evaluate", "--data", str(ui_data), "--candidate", str(trained)]
    args += ["--champion", registered_champion, "--output", str(output)]
    args += ["--batch-size", "16", "--max-new-tokens", str(MAX_NEW_TOKENS)]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, f"{outcome.output}\n{outcome.exception!r}"
    assert "candidate vs champion" in outcome.output

    result = load_evaluation(output / EVALUATION_FILE)
    assert result.baseline_role == "champion"
    assert result.roles == ["candidate", "champion", "base"]
    for metric in COMPARED_METRICS:
        comparison = result.comparison[metric]
        assert comparison.delta == 0.0, comparison
        assert comparison.ci_low <= 0.0 <= comparison.ci_high, comparison
    assert result.guards.semantic_similarity is not None
    assert result.guards.semantic_similarity.delta == 0.0
    assert result.guards.general_holdout is None  # no --general: not measured
    assert result.general_comparison is None
    assert all(row.delta["CIDEr"] == 0.0 for row in result.predictions.test)
    # Generating twice (two loads, batches of 16) gave the very same captions.
    assert all(
        row.captions["candidate"] == row.captions["champion"] for row in result.predictions.test
    )
    assert result.diversity is not None
    assert result.diversity.models["candidate"] == result.diversity.models["champion"]
    champion = result.models["champion"].identity
    candidate = result.models["candidate"].identity
    assert champion.registry is not None and candidate.registry is None
    assert champion.registry.version == "1" and champion.registry.alias == "champion"
    assert champion.registry.uri == registered_champion
    assert champion.location == registered_champion.split("@")[0] + "/1"
    assert champion.weights_sha256 == candidate.weights_sha256
    assert champion.kind == "artifact"
    # Against the base the candidate still shows its gain.
    assert result.comparison_with_base is not None
    assert result.comparison_with_base["CIDEr"].delta > 0
    assert "forgetting was not measured" in (output / REPORT_FILE).read_text()


# --- the evaluation.json contract ---------------------------------------------------------


def test_evaluation_json_is_the_returned_evaluation_and_has_every_section(
    learned: tuple[Evaluation, Path],
) -> None:
    result, output = learned
    on_disk = json.loads((output / EVALUATION_FILE).read_text())
    assert on_disk == result.to_dict()
    assert load_evaluation(output) == result  # a file or the folder (a KFP artifact) holding it
    assert on_disk["schema_version"] == 1 and on_disk["primary_metric"] == "CIDEr"
    expected = {
        "schema_version", "created_at", "uicap_version", "primary_metric", "baseline_role",
        "roles", "models", "comparison", "comparison_with_base", "general_comparison",
        "guards", "diversity", "per_element_type", "data", "generation", "scoring",
        "predictions", "warnings", "derived_from",
    }  # fmt: skip
    assert set(on_disk) == expected
    assert on_disk["derived_from"] is None  # scored here, not derived from other evaluations
    assert set(on_disk["comparison"]) == set(COMPARED_METRICS)
    assert on_disk["comparison_with_base"] is None  # the base already is the baseline
    assert set(on_disk["guards"]) == {
        "semantic_similarity", "format_compliance", "general_holdout", "caption_diversity"
    }  # fmt: skip
    diversity = on_disk["guards"].pop("caption_diversity")
    for name, guard in on_disk["guards"].items():
        assert guard["delta"] == pytest.approx(guard["candidate"] - guard["baseline"]), name
    # Caption diversity is held to the references' on the same test records.
    references = on_disk["diversity"]["references"]
    candidate = on_disk["diversity"]["models"]["candidate"]
    assert set(on_disk["diversity"]["models"]) == set(on_disk["roles"])
    assert references["n"] == candidate["n"] == on_disk["data"]["test"]["n"]
    assert diversity["references"] == references["distinct_share"]
    assert diversity["candidate"] == candidate["distinct_share"]
    assert diversity["candidate_top_share"] == candidate["top_share"]
    assert diversity["delta"] == pytest.approx(diversity["candidate"] - diversity["references"])
    rows = on_disk["predictions"]["test"]
    measured = caption_diversity([row["captions"]["candidate"] for row in rows])
    assert candidate == measured.model_dump()
    assert references == caption_diversity([row["reference"] for row in rows]).model_dump()
    general = on_disk["guards"]["general_holdout"]
    assert general["split"] == "general" and general["metric"] == "CIDEr"
    assert general["candidate"] == on_disk["models"]["candidate"]["general"]["CIDEr"]
    assert general["baseline"] == on_disk["models"]["base"]["general"]["CIDEr"]
    assert on_disk["comparison"]["CIDEr"]["candidate"] == pytest.approx(
        on_disk["models"]["candidate"]["test"]["CIDEr"]
    )
    assert on_disk["comparison"]["CIDEr"]["baseline"] == pytest.approx(
        on_disk["models"]["base"]["test"]["CIDEr"]
    )
    for role in on_disk["roles"]:
        test_metrics = on_disk["models"][role]["test"]
        assert test_metrics["CIDEr"] == pytest.approx(
            np.mean([row["CIDEr"][role] for row in on_disk["predictions"]["test"]])
        )
    assert on_disk["warnings"] == []


def test_per_type_tables_sum_to_n_and_recompute_cider_on_each_subset(
    learned: tuple[Evaluation, Path], ui_data: Path
) -> None:
    result, _ = learned
    n = result.data.test.n
    table = result.per_element_type
    assert n == 22 and sum(row.n for row in table.values()) == n
    records = read_split(ui_data, "test")
    expected_types = {record.element_type for record in records}
    assert set(table) == expected_types
    rows = {row.id: row for row in result.predictions.test}
    for element_type, entry in table.items():
        ids = [r.id for r in records if r.element_type == element_type]
        similarity = np.mean([rows[i].semantic_similarity["candidate"] for i in ids])
        assert entry.models["candidate"].semantic_similarity == pytest.approx(similarity)
        for metric, delta in entry.delta.items():
            candidate, base = entry.models["candidate"], entry.models["base"]
            assert delta == pytest.approx(getattr(candidate, metric) - getattr(base, metric))
    # CIDEr of one type is that type's own corpus CIDEr, as pycocoevalcap computes it.
    ids = [r.id for r in records if r.element_type == "input"]
    subset = score_captions(
        pair_captions(
            {i: rows[i].captions["candidate"] for i in ids},
            {i: [rows[i].reference] for i in ids},
        )
    )
    assert table["input"].models["candidate"].CIDEr == pytest.approx(
        subset.metrics["CIDEr"], abs=1e-9
    )


def test_identities_record_models_data_and_generation(
    learned: tuple[Evaluation, Path],
    trained: Path,
    base: Path,
    ui_data: Path,
    general_data: Path,
) -> None:
    result = learned[0].to_dict()
    candidate = result["models"]["candidate"]["identity"]
    assert candidate["kind"] == "artifact" and candidate["location"] == str(trained.resolve())
    assert candidate["weights_sha256"] == directory_sha256(trained / "adapter")
    assert candidate["base_model"] == str(base) and candidate["family"] == "minicpmv4_6"
    assert candidate["metadata"]["metrics"]["loss_curve"]  # the report plots it
    base_identity = result["models"]["base"]["identity"]
    assert base_identity["kind"] == "plain" and base_identity["reference"] == str(base)
    assert base_identity["tiny_model"]["family"] == "minicpmv4_6"
    manifest = json.loads((ui_data / "manifest.json").read_text())
    assert result["data"]["test"]["fingerprint"] == manifest["fingerprint"]
    assert result["data"]["test"]["prompt_template_version"] == "test-v1"
    general_manifest = json.loads((general_data / "manifest.json").read_text())
    assert result["data"]["general"]["fingerprint"] == general_manifest["fingerprint"]
    assert result["data"]["general"]["n"] == 4
    generation = result["generation"]
    assert generation["max_new_tokens"] == MAX_NEW_TOKENS and generation["batch_size"] == 8
    assert generation["decoding"] == "greedy" and generation["device"] == "cpu"
    assert result["scoring"]["resamples"] == 1000 and result["scoring"]["seed"] == 0
    ids = [record["id"] for record in json.loads((ui_data / "test.json").read_text())]
    assert [row["id"] for row in result["predictions"]["test"]] == ids
    hostile = next(r for r in result["predictions"]["test"] if r["id"] == HOSTILE_IDS[0])
    assert HOSTILE_ONERROR in hostile["reference"] and HOSTILE_SCRIPT in hostile["prompt"]


def test_summary_metrics_flatten_each_model_and_the_deltas(
    learned: tuple[Evaluation, Path],
) -> None:
    result = learned[0].to_dict()
    flat = learned[0].summary_metrics()
    assert flat["candidate_CIDEr"] == result["models"]["candidate"]["test"]["CIDEr"]
    assert flat["base_general_CIDEr"] == result["models"]["base"]["general"]["CIDEr"]
    assert flat["delta_CIDEr_ci_low"] == result["comparison"]["CIDEr"]["ci_low"]
    assert flat["delta_general_CIDEr"] == result["guards"]["general_holdout"]["delta"]
    diversity = result["diversity"]
    assert flat["candidate_distinct_share"] == diversity["models"]["candidate"]["distinct_share"]
    assert flat["base_top_caption_share"] == diversity["models"]["base"]["top_share"]
    assert flat["references_distinct_share"] == diversity["references"]["distinct_share"]
    assert all(isinstance(value, float) for value in flat.values())


def test_a_candidate_trained_on_other_data_is_flagged(
    learned: tuple[Evaluation, Path], trained: Path, tmp_path: Path, ui_data: Path
) -> None:
    from components.evaluate.run import _warnings, load_data

    other = tmp_path / "other"
    shutil.copytree(ui_data, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest.update(fingerprint="sha256:elsewhere", prompt_template_version="test-v2")
    (other / "manifest.json").write_text(json.dumps(manifest))
    notes = _warnings(resolve_model(str(trained)), load_data(other, "test"))
    assert len(notes) == 2 and "test-v2" in notes[0] and "sha256:elsewhere" in notes[1]


# --- KFP --------------------------------------------------------------------------------------


def test_component_writes_metrics_report_and_evaluation_under_kfp_local(
    kfp_local: Path, ui_data: Path, general_data: Path, trained: Path, tmp_path: Path
) -> None:
    from kfp import dsl

    from components.evaluate.component import evaluate_op

    small = tmp_path / "small"
    shutil.copytree(ui_data, small)
    records = json.loads((small / "test.json").read_text())
    (small / "test.json").write_text(json.dumps(records[:4] + records[-1:]))

    @dsl.pipeline(name="evaluate-local")
    def evaluate_local():
        data = dsl.importer(artifact_uri=str(small), artifact_class=dsl.Dataset)
        candidate = dsl.importer(artifact_uri=str(trained), artifact_class=dsl.Model)
        general = dsl.importer(artifact_uri=str(general_data), artifact_class=dsl.Dataset)
        evaluate_op(
            data=data.output,
            candidate=candidate.output,
            general=general.output,
            config=EvaluateConfig(max_new_tokens=MAX_NEW_TOKENS).to_parameter(),
        )

    evaluate_local()
    (task,) = kfp_local.glob("evaluate-local-*/evaluate-op")
    evaluation = load_evaluation(task / "evaluation")
    assert evaluation.schema_version == 1 and evaluation.baseline_role == "base"
    assert evaluation.data.test.n == 5
    report = (task / "report").read_text()
    assert report.startswith("<!DOCTYPE html>") and "data:image/png;base64," in report
    outputs = json.loads((task / "executor_output.json").read_text())
    (metrics,) = outputs["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"] == pytest.approx(evaluation.summary_metrics())
    assert {"candidate_CIDEr", "base_general_CIDEr", "delta_CIDEr_ci_low"} <= set(
        metrics["metadata"]
    )
    (artifact,) = outputs["artifacts"]["evaluation"]["artifacts"]
    assert artifact["metadata"]["baseline_role"] == "base"


def test_component_installs_nothing_and_leaves_the_image_to_the_pipeline() -> None:
    from components.base_image import BASE_IMAGE
    from components.evaluate.component import evaluate_op

    container = evaluate_op.component_spec.implementation.container
    assert container.image == BASE_IMAGE
    assert "pip install" not in " ".join(container.command + (container.args or []))


# --- generation and model references ------------------------------------------------------


def test_batched_generation_equals_one_at_a_time(ui_data: Path, base: Path) -> None:
    records = read_split(ui_data, "test")[:6]
    captioning = resolve_model(str(base)).load("cpu", None)
    batched = generate_captions(captioning, records, batch_size=4, max_new_tokens=6)
    single = generate_captions(captioning, records, max_new_tokens=6, one_at_a_time=True)
    assert batched.captions == single.captions
    assert list(batched.captions) == [record.id for record in records]
    assert batched.batches == 2 and single.batches == 6


def test_read_split_names_the_record_and_the_field(ui_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(ui_data, broken)
    records = json.loads((broken / "test.json").read_text())
    records[3]["element_type"] = 7
    (broken / "test.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"test.json\[3\] \(id test-003\).*'element_type'"):
        read_split(broken, "test")
    records[3]["element_type"] = "button"
    records[5]["image"] = "images/missing.png"
    (broken / "test.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"test.json\[5\].*'image'.*missing"):
        read_split(broken, "test")


def test_model_references_resolve_or_say_why_not(base: Path, tmp_path: Path) -> None:
    assert split_revision("openbmb/MiniCPM-V-4.6@abc123") == ("openbmb/MiniCPM-V-4.6", "abc123")
    assert split_revision("openbmb/MiniCPM-V-4.6") == ("openbmb/MiniCPM-V-4.6", None)
    assert parse_registry_uri("models:/captioner@champion") == ("captioner", "champion", None)
    assert parse_registry_uri("models:/captioner/3") == ("captioner", None, "3")
    with pytest.raises(ModelReferenceError, match="expected models:/<name>@<alias>"):
        parse_registry_uri("models:/captioner")
    hub = resolve_model("openbmb/MiniCPM-V-4.6@abc123", family="minicpmv4_6")
    assert (hub.kind, hub.location, hub.revision) == ("plain", "openbmb/MiniCPM-V-4.6", "abc123")
    with pytest.raises(ModelReferenceError, match="cannot tell its model family"):
        resolve_model("openbmb/MiniCPM-V-4.6")
    with pytest.raises(ModelReferenceError, match="unknown model family 'nope'"):
        resolve_model("org/model", family="nope")
    assert resolve_model(str(base)).family == "minicpmv4_6"  # read from the tiny model marker
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    assert resolve_model(str(bare)).family == "qwen2_vl"
    broken = tmp_path / "broken-artifact"
    broken.mkdir()
    (broken / "uicap_model.json").write_text(json.dumps({"kind": "lora"}))
    with pytest.raises(ModelReferenceError, match=r"invalid uicap_model\.json"):
        resolve_model(str(broken))


def test_cider_bootstrap_of_captions_sharing_no_ngram_with_the_references() -> None:
    result = bootstrap_cider(
        ["zebra quartz"] * 3, ["opens the page"] * 3, [["opens the page"], ["a b"], ["c d"]]
    )
    assert result.candidate == 0.0 and result.delta < 0


def test_only_exactly_named_weights_have_captions_to_reuse(tmp_path: Path) -> None:
    from components.evaluate.caption_reuse import CaptionStore, weights_identity
    from components.evaluate.models import ResolvedModel

    def plain(location: str, revision: str | None) -> ResolvedModel:
        return ResolvedModel(location, "plain", location, revision, "minicpmv4_6")

    # A branch names whatever it points to today: never reused.
    assert weights_identity(plain("org/base", "main")) is None
    assert weights_identity(plain("org/base", None)) is None
    assert weights_identity(plain("org/base", "a" * 40)) == {
        "family": "minicpmv4_6",
        "hub": "org/base",
        "revision": "a" * 40,
    }
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    before = weights_identity(plain(str(folder), None))
    (folder / "config.json").write_text('{"changed": true}')
    assert weights_identity(plain(str(folder), None)) != before
    unhashed = ResolvedModel("x", "artifact", str(folder), None, "minicpmv4_6")
    assert weights_identity(unhashed) is None

    store = CaptionStore(str(tmp_path / "store"))
    store.put("k", {"a": "Opens a.", "b": "Opens b."}, 1.5, "models:/m/1")
    assert store.get("k", ["a", "b"]) == ({"a": "Opens a.", "b": "Opens b."}, 1.5)
    # A record the stored run did not caption: generate them all again.
    assert store.get("k", ["a", "b", "c"]) is None
    assert store.get("missing", ["a"]) is None
