"""A tiny trained teacher shared by the nfe-sweep and distillation tests: configs/demo.py's
recipe (clean prediction, gated mixture head) at 32 wide on a small synthetic corpus,
trained once per test session by the real trainer."""

from __future__ import annotations

from train_testlib import REPO

# configs/demo.py shrunk: 2 layers of width 32, 0.256 s clips (16 latent frames), batch 8.
TEACHER = [
    "--config.model.dim=32",
    "--config.model.num_layers=2",
    "--config.model.num_heads=2",
    "--config.model.frequency_embedding_dim=32",
    "--config.model.text_dim=32",
    "--config.text.small.dim=32",
    "--config.data.segment_seconds=0.256",
    "--config.data.synth.clip_seconds=0.256",
    "--config.train.global_batch_size=8",
    "--config.train.warmup_steps=10",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=1000",
    "--config.sample.max_batch=20",
]
TEACHER_STEPS = 60

_CACHE: dict = {}


def demo_config(data_dir, extra: list[str] | None = None):
    from samaudio_jax.cli.config_loader import load_config

    return load_config(
        REPO / "configs" / "demo.py", TEACHER + [f"--config.data.dir={data_dir}"] + (extra or [])
    )


def trained_teacher(tmp_path_factory):
    """(data dir, teacher workdir), made on first use in this session."""
    if "teacher" not in _CACHE:
        from samaudio_jax.data.synth import write_synth_corpus
        from samaudio_jax.train.loop import train

        root = tmp_path_factory.mktemp("distill-teacher")
        data = root / "data"
        write_synth_corpus(
            data, seed=0, sample_rate=8000, clip_seconds=0.256, train_per_class=8,
            test_per_class=4, overwrite=True,
        )  # fmt: skip
        config = demo_config(data, [f"--config.train.steps={TEACHER_STEPS}"])
        train(config, str(root / "teacher"), print_fn=lambda *a, **k: None)
        _CACHE["teacher"] = (data, root / "teacher")
    return _CACHE["teacher"]
