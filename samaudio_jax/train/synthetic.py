"""An in-memory synthetic batch source for tests and smoke runs (no files needed).

Batch i, example j (global index) is a pure function of (seed, i, j): every process draws
only its own rows and all processes together produce exactly the single-process batch.
Target and residual are sums of a few random sinusoids with random envelopes; the mixture
is their sum; lengths vary, so padding is exercised; one "+" span covers part of where the
target is; the prompt names the target's "class" (its lowest partial).

The iterator has get_state / set_state (JSON bytes) / start_prefetch like a Grain
iterator, so the Orbax checkpoint saves and restores its position.
"""

from __future__ import annotations

import json

import numpy as np

PROMPTS = ("dog barking", "piano", "speech", "siren", "rain on a roof", "guitar", "drums", "")


class SyntheticBatches:
    def __init__(
        self,
        *,
        global_batch: int,
        num_samples: int,
        sample_rate: int,
        tokenize=None,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        max_spans: int = 2,
        fixed: bool = False,
        text_length: int = 16,
    ):
        if global_batch % process_count:
            raise ValueError(
                f"global batch {global_batch} does not split over {process_count} processes"
            )
        self.global_batch = global_batch
        self.local_batch = global_batch // process_count
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self.tokenize = tokenize
        self.seed = seed
        self.process_index = process_index
        self.max_spans = max_spans
        self.fixed = fixed
        self.text_length = text_length
        self.index = 0

    def __iter__(self):
        return self

    def example(self, batch_index: int, example_index: int):
        rng = np.random.default_rng([self.seed, batch_index, example_index])
        n = self.num_samples
        length = int(rng.integers(n // 2, n + 1))
        time = np.arange(n) / self.sample_rate
        cls = int(rng.integers(len(PROMPTS) - 1))
        base = 200.0 + 150.0 * cls

        def tone(freqs):
            env = np.clip(np.sin(np.pi * (time * rng.uniform(1, 4) + rng.uniform())), 0, None)
            return sum(rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * f * time) for f in freqs) * env

        target = tone([base, 2 * base])
        residual = tone(rng.uniform(100, self.sample_rate / 3, size=3))
        target[length:] = 0
        residual[length:] = 0
        dur = length / self.sample_rate
        spans = np.zeros((self.max_spans, 3), np.float32)
        start = rng.uniform(0, dur / 2)
        spans[0] = (1.0, start, rng.uniform(start + 1e-3, dur))
        prompt = PROMPTS[cls] if rng.uniform() > 0.1 else ""
        return {
            "mixture": (target + residual).astype(np.float32),
            "target": target.astype(np.float32),
            "residual": residual.astype(np.float32),
            "num_samples": np.int32(length),
            "spans": spans,
            "prompt": prompt,
        }

    def batch(self, batch_index: int) -> dict:
        first = self.process_index * self.local_batch
        rows = [self.example(batch_index, first + j) for j in range(self.local_batch)]
        out = {
            k: np.stack([r[k] for r in rows]) for k in ("mixture", "target", "residual", "spans")
        }
        out["num_samples"] = np.asarray([r["num_samples"] for r in rows], np.int32)
        if self.tokenize is not None:
            ids, mask = self.tokenize([r["prompt"] for r in rows])
            s = self.text_length
            if ids.shape[1] > s:
                raise ValueError(f"synthetic prompts tokenize to {ids.shape[1]} > {s} tokens")
            out["text_ids"] = np.pad(ids, ((0, 0), (0, s - ids.shape[1]))).astype(np.int32)
            out["text_mask"] = np.pad(mask, ((0, 0), (0, s - mask.shape[1]))).astype(bool)
        return out

    def __next__(self) -> dict:
        out = self.batch(0 if self.fixed else self.index)
        self.index += 1
        return out

    def get_state(self) -> bytes:
        return json.dumps({"index": self.index, "seed": self.seed}).encode()

    def set_state(self, state: bytes) -> None:
        d = json.loads(state.decode() if isinstance(state, bytes) else state)
        self.index = int(d["index"])

    def start_prefetch(self) -> None:
        pass
