"""Flow network: the SAM Audio DiT and the release's wrapper around it."""
