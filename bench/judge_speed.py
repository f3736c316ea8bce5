"""SAM Audio Judge scores/s and PE-A-Frame span prediction time on this CPU, at the sizes of
the release's config classes (SAMAudioJudgeConfig / PEAudioFrameConfig defaults: DACVAE
64 / [2,8,10,12] / 1024 / 128, PE-AV transformers 1024 wide x 16 layers) with
perception_models' default text model (ModernBERT-large, 28 layers, read at layer 22),
random weights.

The reference is the same forward pass composed from transformers' modules (ModernBertModel,
PeAudioEncoder's DAC encoder and transformer, torch projections: tests/judge_reference.py
composed_judge), with its own random weights: this times the two, equality is tested at
small sizes (tests/test_judge_model.py).

Run (heavy: ~0.8B parameters per side; one part at a time keeps memory down):
  PYTHONPATH=. python bench/judge_speed.py --seconds 10 --repeats 2 --part jax
  PYTHONPATH=. python bench/judge_speed.py --seconds 10 --repeats 2 --part torch
  PYTHONPATH=. python bench/judge_speed.py --seconds 10 --repeats 2 --part spans
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # python bench/<name>.py

from bench.common import machine_facts, median_seconds  # noqa: E402
from samaudio_jax.judge.config import (  # noqa: E402
    PE_TEXT_MODEL,
    FrameConfig,
    JudgeConfig,
    ModernBertConfig,
)
from samaudio_jax.judge.load import build_frame, build_judge  # noqa: E402
from samaudio_jax.judge.processor import TextTokenizer  # noqa: E402
from tests import judge_reference as R  # noqa: E402

RATE = 48_000
TEXT = "a dog barking in the distance while a car engine idles"
CONFIG = JudgeConfig(text_model=ModernBertConfig(**PE_TEXT_MODEL))


def _tokenizer():
    d = Path(tempfile.mkdtemp(prefix="judge_bench_"))
    R.write_tokenizer(d)
    return TextTokenizer.from_dir(d, 512, 0)


def _audio(args):
    rng = np.random.default_rng(0)
    n = int(args.seconds * RATE)
    mix = [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.batch)]
    return mix, [m * 0.5 for m in mix]


def bench_jax(args) -> None:
    from samaudio_jax.judge.scorer import JudgeScorer

    start = time.perf_counter()
    scorer = JudgeScorer.from_model(build_judge(CONFIG, seed=0), _tokenizer(), args.batch)
    print(f"jax: built in {time.perf_counter() - start:.1f} s")
    mix, sep = _audio(args)
    texts = [TEXT] * args.batch
    start = time.perf_counter()
    scorer.score(mix, sep, texts, RATE)
    print(f"jax: first call (compile + run) {time.perf_counter() - start:.1f} s")
    t = median_seconds(lambda: scorer.score(mix, sep, texts, RATE), args.repeats, warmup=0)
    print(f"jax: {t:.2f} s per batch of {args.batch} x {args.seconds:g} s -> "
          f"{args.batch / t:.3f} scores/s")  # fmt: skip


def bench_torch(args) -> None:
    import torch
    from transformers import ModernBertModel

    cfg = CONFIG
    text_cfg = R.hf_text_config()
    for k, v in dict(vocab_size=50368, hidden_size=1024, intermediate_size=2624,
                     num_hidden_layers=28, num_attention_heads=16, local_attention=128,
                     max_position_embeddings=8192, pad_token_id=50283).items():  # fmt: skip
        setattr(text_cfg, k, v)
    text_cfg.rope_parameters = {
        "full_attention": {"rope_type": "default", "rope_theta": 160000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    }
    text_cfg.layer_types = None
    text_cfg.__post_init__()
    start = time.perf_counter()
    pe = dict(hidden_size=1024, intermediate_size=2752, num_hidden_layers=16,
              num_attention_heads=8, max_position_embeddings=10000)  # fmt: skip
    dac = dict(encoder_hidden_size=64, downsampling_ratios=[2, 8, 10, 12], hidden_size=1024,
               codebook_size=1024, codebook_dim=128, sampling_rate=RATE)  # fmt: skip
    saved = dict(R.DAC)
    R.DAC.clear()
    R.DAC.update(dac)
    h, bn = 1024, cfg.bottleneck_dim
    ref = torch.nn.ModuleDict(
        dict(
            text_model=R.randomize(R.uninitialized(ModernBertModel, text_cfg), 1),
            audio=R.hf_pe_encoder(pe, 2),
            finetune=R.hf_pe_encoder(pe, 3),
            cat_audio_proj=torch.nn.Linear(2 * h, bn),
            text_proj1=torch.nn.Linear(1024, h, bias=False),
            text_proj2=torch.nn.Linear(h, bn),
            layer_norm=torch.nn.LayerNorm(bn),
            proj_audio_and_text=torch.nn.Linear(2 * bn, bn),
            finetune_data_proj=torch.nn.Linear(bn, h),
            head=torch.nn.Linear(h, 4, bias=False),
        )
    ).eval()
    R.DAC.clear()
    R.DAC.update(saved)
    print(f"torch: built in {time.perf_counter() - start:.1f} s")
    mix, sep = _audio(args)
    hop = 1920
    n = -(-len(mix[0]) // hop) * hop
    mix_t = torch.from_numpy(np.stack([np.pad(m, (0, n - len(m)), mode="reflect") for m in mix]))
    sep_t = torch.from_numpy(np.stack([np.pad(s, (0, n - len(s)), mode="reflect") for s in sep]))
    pad = torch.ones(mix_t.shape, dtype=torch.bool)
    ids, mask = (torch.from_numpy(a.astype(np.int64)) for a in _tokenizer()([TEXT] * args.batch))
    mean, std = torch.zeros(4), torch.ones(4)

    def run():
        return R.composed_judge(ref, mean, std, ids, mask, mix_t, sep_t, pad, nth=22, hop=hop)

    t = median_seconds(run, args.repeats, warmup=1)
    print(f"torch: {t:.2f} s per batch of {args.batch} x {args.seconds:g} s -> "
          f"{args.batch / t:.3f} scores/s")  # fmt: skip


def bench_spans(args) -> None:
    from samaudio_jax.judge.span_predictor import SpanPredictor

    start = time.perf_counter()
    predictor = SpanPredictor(build_frame(FrameConfig(), seed=0), _tokenizer())
    print(f"spans: built in {time.perf_counter() - start:.1f} s")
    mix, _ = _audio(args)
    start = time.perf_counter()
    predictor.predict(mix[:1], [TEXT], RATE)
    print(f"spans: first call (compile + run) {time.perf_counter() - start:.1f} s")
    t = median_seconds(lambda: predictor.predict(mix[:1], [TEXT], RATE), args.repeats, warmup=0)
    print(f"spans: {t:.2f} s per {args.seconds:g} s clip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--part", choices=("jax", "torch", "spans", "all"), default="all")
    args = parser.parse_args()
    print(machine_facts())
    if args.part in ("jax", "all"):
        bench_jax(args)
    if args.part in ("torch", "all"):
        bench_torch(args)
    if args.part in ("spans", "all"):
        bench_spans(args)


if __name__ == "__main__":
    main()
