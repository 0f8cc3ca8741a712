"""Synthetic sample datasets: UI-element interactions (the input contract) and general captions.

They let the local profile and the tests run the whole pipeline offline; see
`write_sample_dataset` for the folder layout and the generators for in-memory records.
"""

from components.demo.samples.general_scenes import SCENE_KINDS, draw_scene, general_records
from components.demo.samples.sample_dataset import (
    SAMPLE_KINDS,
    general_features,
    sample_text_corpus,
    ui_features,
    write_sample_dataset,
)
from components.demo.samples.ui_screens import SCREEN_KINDS, draw_screen, ui_records
from components.demo.samples.ui_summaries import SUMMARY_TEMPLATES

__all__ = [
    "SAMPLE_KINDS",
    "SCENE_KINDS",
    "SCREEN_KINDS",
    "SUMMARY_TEMPLATES",
    "draw_scene",
    "draw_screen",
    "general_features",
    "general_records",
    "sample_text_corpus",
    "ui_features",
    "ui_records",
    "write_sample_dataset",
]
