"""Training metrics: throughput, estimated MFU, the progress line, JSONL and TensorBoard.

metrics.jsonl and tb/ live in the workdir, local or behind a URL (see io_append: a URL's
files are uploaded whole, at most every `flush_secs`, and at close).

MFU = (FLOPs of one compiled step per device, from XLA's cost_analysis) x steps/s / the
device's peak dense bf16 FLOP/s (table below; override with config.train.peak_flops).
"""

from __future__ import annotations

import json

from samaudio_jax.io_append import AppendFile
from samaudio_jax.paths import as_path

# Peak dense bf16 FLOP/s per chip, matched against jax Device.device_kind (lower case).
PEAK_FLOPS = (
    ("v6", 918e12),  # TPU v6e (Trillium)
    ("v5p", 459e12),
    ("v5 lite", 197e12),  # TPU v5e
    ("v5e", 197e12),
    ("v4", 275e12),
    ("h200", 989e12),
    ("h100", 989e12),
    ("a100", 312e12),
)


def peak_flops_per_device(device_kind: str, override: float = 0.0) -> float | None:
    if override and override > 0:
        return float(override)
    kind = device_kind.lower()
    for key, value in PEAK_FLOPS:
        if key in kind:
            return value
    return None


def compiled_flops(compiled) -> float | None:
    """FLOPs of one call of a jax Compiled, per device (XLA counts the per-device program),
    with each loop (the scanned layer stack) counted trip-count times: parallel/hlo_cost."""
    from samaudio_jax.parallel import aot

    try:
        return aot.cost(compiled)[0]
    except Exception:  # an unparsable program: no MFU rather than no training
        return None


def mfu(flops_per_step: float | None, steps_per_s: float, peak: float | None) -> float | None:
    if not flops_per_step or not peak:
        return None
    return flops_per_step * steps_per_s / peak


def progress_line(step: int, total: int, m: dict) -> str:
    parts = [
        f"step {step}/{total}",
        f"loss {m['loss']:.5f}",
        f"grad_norm {m['grad_norm']:.3g}",
        f"lr {m['learning_rate']:.3g}",
        f"{m['steps_per_s']:.2f} steps/s",
        f"{m['examples_per_s']:.1f} examples/s",
    ]
    parts.append(f"MFU {100 * m['mfu']:.1f}%" if m.get("mfu") is not None else "MFU n/a")
    return " | ".join(parts)


class MetricsWriter:
    """metrics.jsonl (one JSON object per logged step) and TensorBoard scalars in tb/."""

    def __init__(self, workdir, enabled: bool = True, flush_secs: float = 30.0):
        self.enabled = enabled
        self.path = as_path(workdir) / "metrics.jsonl"
        self._tb = self._file = None
        if enabled:
            from samaudio_jax.train.tb_events import EventsWriter

            self._file = AppendFile(self.path, flush_secs=flush_secs)
            self._tb = EventsWriter(as_path(workdir) / "tb", flush_secs=flush_secs)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        self._file.write((json.dumps({"step": step, **metrics}) + "\n").encode())
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                # Names with a section ("eval/loss") keep it; the rest are train/ scalars.
                self._tb.add_scalar(k if "/" in k else f"train/{k}", v, step)

    def flush(self) -> None:
        """Uploads what a URL's files hold so far (done at each checkpoint: the log then
        survives wherever the checkpoint does)."""
        if self._file is not None:
            self._file.flush()
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_losses(workdir) -> dict[int, float]:
    """step -> loss from metrics.jsonl; a step logged twice (re-run after resume) keeps the last.
    Lines without a training loss (evaluation lines) are skipped."""
    out = {}
    path = as_path(workdir) / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                if "loss" in d:
                    out[int(d["step"])] = float(d["loss"])
    return out
