"""Evaluation: SI-SDR, SDR, the evaluation loop (evaluate.py) and plots of a separation
(plots.py)."""
