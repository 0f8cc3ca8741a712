"""The ingest step: load a dataset at a pinned revision, validate it record by record.

`ingest` is the plain function the CLI and the KFP component call; the modules hold one
idea each: `source` (Hub or local, resolved revision), `column_maps` (presets and
renames onto the contract), `images` (decode and normalise), `validate` (record checks),
`manifest` (the typed manifest and fingerprint), `publish` (all-or-nothing output).
"""

from components.ingest.column_maps import PRESETS, ColumnMap, ColumnMapError, parse_column_map
from components.ingest.contract import CONTRACT_COLUMNS, contract_features
from components.ingest.manifest import IngestManifest, QuarantineEntry
from components.ingest.publish import OutputExistsError
from components.ingest.run import DATA_DIR, QuarantineThresholdError, ingest
from components.ingest.source import SourceError, content_hash, load_source

__all__ = [
    "CONTRACT_COLUMNS",
    "DATA_DIR",
    "PRESETS",
    "ColumnMap",
    "ColumnMapError",
    "IngestManifest",
    "OutputExistsError",
    "QuarantineEntry",
    "QuarantineThresholdError",
    "SourceError",
    "content_hash",
    "contract_features",
    "ingest",
    "load_source",
    "parse_column_map",
]
