"""The image every component is declared with, and why it is not the project's image.

Which image a task runs on is the pipeline's choice (its placement module): the
pinned runtime image for CPU steps, the trainer image for train and evaluate, named in
the settings (or, for a containerized local run, by what `make images` built). A
component only needs some image to be declared with; kfp.local's SubprocessRunner ignores
it and runs the task in the current environment. Nothing is pip-installed at run time
(not even kfp): the images the pipeline sets have the package installed.
"""

BASE_IMAGE = "python:3.11-slim"
