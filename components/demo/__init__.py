"""What the local profile and the tests run on, since nothing can be downloaded: generated
UI and general-captioning datasets, tiny VLMs of the real classes, and a warmed base."""
