"""`samaudio-jax compile`: AOT-compile the real train step for a TPU topology on any host.

Prints per-chip memory (memory_analysis), FLOPs and bytes accessed per step
(cost_analysis, with every loop iteration counted: parallel/hlo_cost.py; XLA alone counts
the scanned layer stack's body once), and a roofline PREDICTION of the step time and MFU (FLOPs at the chip's
published peak bf16 FLOP/s vs bytes at its HBM bandwidth; parallel.aot.Roofline); exits
with status 2 and says so when the step does not fit the chip's HBM.

--inputs: `waveforms` (the codec, and a frozen T5, run inside the step), `latents` (what
train runs on encode-shards output: latent batches in --latent_dtype, the text table's
features instead of T5, neither in the program), or `auto` (default: as `train` would
choose from config.data.dir's index; waveforms without one).
"""

from __future__ import annotations

import re
import sys
import time


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="experiment file, e.g. configs/large.py")
    parser.add_argument(
        "--topology", required=True, help="TPU topology, e.g. v5e:2x2, v5p:4x4x4, v6e:16x16"
    )
    parser.add_argument(
        "--text_length", type=int, default=32, help="text tokens per example in the batch"
    )
    parser.add_argument(
        "--inputs",
        choices=("auto", "waveforms", "latents"),
        default="auto",
        help="batches of waveforms (encoded by the codec inside the step) or of latents "
        "(encode-shards output); auto: from config.data.dir's index, else waveforms",
    )
    parser.add_argument(
        "--latent_dtype",
        default="float16",
        choices=("float16", "bfloat16", "float32"),
        help="storage dtype of latent batches and text features (--inputs latents)",
    )
    parser.add_argument(
        "--hbm_gib", type=float, default=0.0, help="HBM per chip in GiB (0 = the chip's own)"
    )
    parser.add_argument(
        "--video",
        action="store_true",
        help="batches carry visual-prompt features (B, model.video_dim, T), as shards with video do",
    )
    # Parameter-efficient fine-tuning variants (train/freeze.py, model/lora.py).
    parser.add_argument(
        "--lora_rank",
        type=int,
        default=0,
        help="LoRA adapters of this rank (model.lora.rank); base weights frozen",
    )
    parser.add_argument(
        "--train_last_layers",
        type=int,
        default=0,
        help="train only the last K DiT blocks (train.trainable), the rest frozen",
    )


def run(args, overrides) -> int:
    import os

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from samaudio_jax.cli.config_loader import load_config
    from samaudio_jax.parallel import aot

    family = aot.chip_family(args.topology)
    config = load_config(args.config, overrides)
    from samaudio_jax.train import distill

    if distill.enabled(config):  # a distillation step: the teacher rides in the frozen dict
        from samaudio_jax.config_checks import ConfigError

        try:
            distill.check(config)
        except ValueError as err:  # one line naming the config.train.distill field
            raise ConfigError(str(err)) from None
    inputs = args.inputs
    if inputs == "auto":
        from samaudio_jax.train import inputs as inputs_lib
        from samaudio_jax.train.state import ModuleFactories

        inputs = inputs_lib.for_dataset(config, ModuleFactories())[2]
    finetune = _apply_finetune_flags(config, args)
    t0 = time.perf_counter()
    try:
        compiled, setup = compile_for_topology(
            config,
            args.topology,
            args.text_length,
            inputs,
            video=args.video,
            latent_dtype=args.latent_dtype,
        )
    except Exception as e:  # XLA refuses programs whose temporaries exceed the chip's HBM
        needed = re.search(r"RESOURCE_EXHAUSTED.*?temporaries \(([\d.]+)G\)", str(e))
        if not needed:
            raise
        print(
            f"error: config {config.name} does not fit {args.topology}: XLA needs "
            f"{float(needed.group(1)):.2f} GiB of temporaries per chip, a {family} chip has "
            f"{aot.HBM_GIB[family]} GiB. Use more chips, more FSDP, remat, or a smaller batch.",
            file=sys.stderr,
        )
        return 2
    seconds = time.perf_counter() - t0
    report = aot.memory_report(compiled)
    costs = aot.loop_cost(compiled)
    hbm = args.hbm_gib or aot.HBM_GIB[family]
    chips = setup.mesh.devices.size
    print(f"config {config.name} on {args.topology} ({chips} chips, mesh {dict(setup.mesh.shape)})")
    from samaudio_jax.train.freeze import count

    trained, total = count(setup.trainable, setup.abstract_state["params"])
    print(
        f"parameters: {total / 1e6:.1f} M, trained {trained / 1e6:.2f} M ({finetune}); "
        f"optimizer state {aot.gib(_nbytes(setup.abstract_state['opt_state'])):.2f} GiB"
    )
    video = f" with visual-prompt features (B, {config.model.video_dim}, T)" if args.video else ""
    print(
        f"global batch {config.train.global_batch_size} of {inputs}{video}, "
        f"compiled in {seconds:.1f} s"
    )
    print(
        f"per-chip memory: {aot.gib(report.total):.2f} GiB of {hbm} GiB HBM "
        f"(arguments {aot.gib(report.arguments):.2f}, outputs {aot.gib(report.outputs):.2f}, "
        f"aliased {aot.gib(report.aliased):.2f}, temporaries {aot.gib(report.temporaries):.2f})"
    )
    if costs is not None:
        _print_costs(costs, chips, family)
    if report.total > hbm * 2**30:
        print(
            f"error: config {config.name} does not fit {args.topology}: needs "
            f"{aot.gib(report.total):.2f} GiB per chip, a {family} chip has {hbm} GiB. "
            "Use more chips, more FSDP, remat, or a smaller batch.",
            file=sys.stderr,
        )
        return 2
    return 0


def _print_costs(costs, chips: int, family: str) -> None:
    from samaudio_jax.parallel import aot

    trips = [loop.trip_count for loop in costs.loops]
    loops = ", ".join(
        f"{trips.count(n)} x {n if n is not None else '?'} trips"
        for n in sorted(set(trips), key=lambda n: -1 if n is None else -n)
    )
    print(
        f"FLOPs per step per chip: {costs.flops:.4g} ({costs.flops * chips:.4g} for the slice); "
        f"XLA's cost analysis alone, each loop body once: {costs.xla_flops:.4g}"
    )
    print(
        f"bytes accessed per step per chip: {costs.bytes_accessed:.4g} "
        f"(XLA alone: {costs.xla_bytes:.4g})"
    )
    if costs.loops:
        print(f"while loops counted trip-count times (loops x trips): {loops}")
    if costs.unknown:
        print(
            f"warning: trip count unreadable for {', '.join(costs.unknown)}: counted once, "
            "so the FLOPs, bytes and roofline below are a lower bound"
        )
    r = aot.roofline(family, costs.flops, costs.bytes_accessed)
    print(
        f"roofline PREDICTION (not a measurement; {family}: {r.peak_flops / 1e12:.0f} TFLOP/s "
        f"bf16, {r.hbm_bytes_per_s / 1e9:.0f} GB/s HBM; collectives not modelled): step "
        f">= {r.step_s * 1e3:.1f} ms ({r.bound}-bound; compute {r.compute_s * 1e3:.1f} ms, "
        f"HBM {r.memory_s * 1e3:.1f} ms), MFU <= {100 * r.mfu():.0f}%"
    )


def _nbytes(tree) -> int:
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _apply_finetune_flags(config, args) -> str:
    """Sets the config fields --lora_rank / --train_last_layers stand for; names the variant."""
    if args.lora_rank < 0 or args.train_last_layers < 0:
        raise ValueError("--lora_rank / --train_last_layers: expected >= 0")
    if args.lora_rank:
        config.model.lora.rank = int(args.lora_rank)
    layers = int(config.model.num_layers)
    if args.train_last_layers:
        if args.train_last_layers > layers:
            raise ValueError(f"--train_last_layers: the model has {layers} blocks")
        last = "|".join(str(i) for i in range(layers - args.train_last_layers, layers))
        config.train.trainable = (f"flow/transformer/layers/({last})/.*",)
    if config.model.lora.rank:
        return f"LoRA rank {config.model.lora.rank}"
    if config.train.trainable or config.train.freeze:
        return "partly frozen"
    return "full"


def compile_for_topology(
    config,
    topology: str,
    text_length: int = 32,
    inputs: str = "waveforms",
    video: bool = False,
    latent_dtype: str = "float16",
):
    """(jax Compiled of the train step, TrainSetup) for `topology`; `video` adds the batch's
    visual-prompt features (B, model.video_dim, latent frames). `inputs="latents"` is the
    program `train` runs on encode-shards output: no codec, and with a frozen T5 no text
    encoder either (the batch carries text_features)."""
    from samaudio_jax.parallel import aot

    return compile_for_devices(
        config, aot.topology_devices(topology), text_length, inputs, video, latent_dtype
    )


def compile_for_devices(
    config,
    devices,
    text_length: int = 32,
    inputs: str = "waveforms",
    video: bool = False,
    latent_dtype: str = "float16",
):
    """compile_for_topology over the given devices (e.g. this host's CPU devices)."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from samaudio_jax.parallel.mesh import make_mesh
    from samaudio_jax.train import distill
    from samaudio_jax.train import state as state_lib
    from samaudio_jax.train import step as step_lib

    distilling = distill.enabled(config)
    if distilling:  # checks config.train.distill first (one-line errors naming the field)
        config = distill.student_config(config)
    mesh = make_mesh(config.mesh, devices)
    factories = state_lib.ModuleFactories()
    if config.text.kind == "t5" and not config.text.t5_dir:
        factories = dataclasses.replace(factories, text=_random_t5)
    if inputs == "latents":  # the step never encodes: no codec (nor T5) in the program
        from samaudio_jax.train import inputs as inputs_lib

        factories = inputs_lib.latent_factories(config, factories)
    setup = state_lib.build_setup(config, mesh, factories)
    if distilling:  # the teacher's parameters (the student's shapes) ride in the frozen dict
        setup = distill.with_teacher(setup)
    b = int(config.train.global_batch_size)
    n = int(round(config.data.segment_seconds * config.data.sample_rate))
    store = jnp.dtype(latent_dtype) if latent_dtype != "bfloat16" else jnp.bfloat16
    if inputs == "latents":
        t = -(-n // setup.codec_info["hop_length"])
        shape = (b, t, setup.codec_info["latent_dim"])
        batch = {k: jax.ShapeDtypeStruct(shape, store) for k in step_lib.LATENT_KEYS}
        batch["valid"] = jax.ShapeDtypeStruct((b, t), jnp.bool_)
        if config.text.kind == "t5":  # the text table's features (T5 ran once, ahead)
            import numpy as np

            dim = int(config.model.text_dim)
            setup = dataclasses.replace(
                setup, empty_text=(np.zeros((1, dim), np.float32), np.ones((1,), bool))
            )
            batch["text_features"] = jax.ShapeDtypeStruct((b, text_length, dim), store)
            batch["text_mask"] = jax.ShapeDtypeStruct((b, text_length), jnp.bool_)
    else:
        batch = {k: jax.ShapeDtypeStruct((b, n), jnp.float32) for k in step_lib.WAVE_KEYS}
        batch["num_samples"] = jax.ShapeDtypeStruct((b,), jnp.int32)
    batch["spans"] = jax.ShapeDtypeStruct((b, 4, 3), jnp.float32)
    if video:
        frames = -(-n // setup.codec_info["hop_length"])
        batch["video"] = jax.ShapeDtypeStruct((b, int(config.model.video_dim), frames), jnp.float32)
    if setup.text_graph is not None:
        batch["text_ids"] = jax.ShapeDtypeStruct((b, text_length), jnp.int32)
        batch["text_mask"] = jax.ShapeDtypeStruct((b, text_length), jnp.bool_)
    return step_lib.compile_train_step(setup, batch), setup


class _EosOnlyTokenizer:
    """Stands in for the T5 tokenizer when only shapes matter: "" -> [</s>]."""

    def __init__(self, max_length: int, bucket_length: int):
        self.max_length, self.bucket_length = max_length, bucket_length

    def __call__(self, texts):
        import numpy as np

        n = len(texts)
        return np.ones((n, 1), np.int32), np.ones((n, 1), bool)


def _random_t5(config, rngs):
    """T5-base with random weights (shapes only): AOT needs no text.t5_dir."""
    from samaudio_jax.text.t5 import T5Network, T5TextEncoder
    from samaudio_jax.text.t5_config import T5EncoderConfig

    network = T5Network(T5EncoderConfig(d_model=int(config.model.text_dim)), rngs=rngs)
    tokenizer = _EosOnlyTokenizer(int(config.text.max_length), int(config.text.bucket_length))
    return T5TextEncoder(network, tokenizer)


def main(argv: list[str] | None = None) -> int:
    """`python -m samaudio_jax.cli.compile ...`: the same command without the dispatcher."""
    from samaudio_jax.cli.args import run_standalone

    return run_standalone(sys.modules[__name__], "samaudio-jax compile", argv)


if __name__ == "__main__":
    sys.exit(main())
