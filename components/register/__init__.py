"""Registry and promotion: MLflow model versions, the gate, compare-and-set promotion, serving.

- `client`: the MLflow registry from settings/env, with bounded retries.
- `pyfunc_model`: the captioner as an MLflow pyfunc model (what serving loads).
- `registration`: log + register a candidate, idempotent per pipeline run.
- `gate`: the pure decision on evaluation.json; `head_to_head`: two candidates that
  shared a baseline, compared record by record.
- `lock` + `promotion`: the champion alias moved by compare-and-set; manual promotion
  and rollback.
- `export`: merged weights + processor for vLLM / SGLang.
- `config`: the gate and registry configs the steps receive as JSON.
- `run` (plain functions) and `component` (KFP): the pipeline's register, gate and
  promote steps.

Submodules are imported where used: mlflow and torch are heavy, and `uicap --help` must
stay fast.
"""
