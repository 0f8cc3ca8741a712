"""The start of a pipeline run against the Hub, as its steps run it: lineage, then ingest.

`python -m tests.support.hub_run '<json>'` runs the lineage step (resolve the revisions,
compare with the champion) and, when there is something new, the ingest step at the
resolved dataset revision, in a fresh process, so the real huggingface_hub client reads
HF_ENDPOINT and HF_HOME from the environment as it does in a pod. It prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(arguments: dict[str, str]) -> dict[str, object]:
    from components.ingest import ingest
    from components.lineage.run import lineage_step
    from components.prepare.config import PrepareConfig
    from components.register.config import RegistryConfig
    from components.train.config import parse_config

    train = parse_config(arguments.get("train_config", ""))
    if arguments.get("base_revision"):
        train = train.model_copy(update={"base_revision": arguments["base_revision"]})
    check, _ = lineage_step(
        dataset=arguments["dataset"],
        revision=arguments.get("revision", ""),
        base_model=arguments["base_model"],
        prepare=PrepareConfig(),
        train=train,
        registry=RegistryConfig(tracking_uri=arguments["tracking_uri"], model_name="hub-test"),
    )
    result: dict[str, object] = {**check.record(), "tags": check.lineage.tags()}
    if check.changed:
        manifest = ingest(
            arguments["dataset"], Path(arguments["output"]), revision=check.lineage.data_revision
        )
        result["ingested"] = {
            "resolved_revision": manifest.source.resolved_revision,
            "kept": manifest.counts.kept,
        }
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
