"""Evaluation: SI-SDR, SDR and the evaluation loop."""
