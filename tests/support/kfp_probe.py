"""A lightweight KFP component whose body imports this project, for the kfp.local test.

No `from __future__ import annotations` here: KFP reads the parameter annotations as
objects to build the component spec, and string annotations break it (kfp 2.17).
"""

from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def write_marker(text: str, marker: dsl.Output[dsl.Artifact]) -> None:
    """Write `text` and the pid of the process that ran it, through components.storage."""
    import os

    from components.storage import write_text

    write_text(marker.path, f"{text} from pid {os.getpid()}")
