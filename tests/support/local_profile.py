"""Session fixtures for the local profile's real assets: the warmed tiny base and data.

Building them costs a minute of CPU, so every test that needs the real thing (learning
on the warmed base, evaluation, the pipeline) shares one copy per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from components.demo.local_assets import LocalAssets, ensure_local_assets
from components.prepare.token_count import BaseTokenizer
from pipelines.settings import Settings, load_settings


@dataclass(frozen=True)
class LocalProfile:
    settings: Settings
    assets: LocalAssets
    prepared: Path  # the UI sample, ingested and prepared with the profile's settings


@pytest.fixture(scope="session")
def local_profile(tmp_path_factory: pytest.TempPathFactory) -> LocalProfile:
    from components.ingest import ingest
    from components.prepare import prepare

    workdir = tmp_path_factory.mktemp("uicap-work")
    settings = load_settings("local", [f"workdir={workdir}"])
    assets = ensure_local_assets(workdir, settings.model.family, settings.prepare.max_image_side)
    ingest(str(assets.ui_dataset), workdir / "ingested")
    prepared = workdir / "prepared"
    prepare(
        workdir / "ingested",
        prepared,
        settings.prepare.model_copy(update={"workers": 2}),
        tokenizer=BaseTokenizer(str(assets.base_model)),
    )
    return LocalProfile(settings, assets, prepared)
