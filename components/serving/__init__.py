"""Serving proof: a real inference server serves the exported champion, and its captions
are compared with uicap's own (`uicap serving-check`, `make serving-check`)."""
