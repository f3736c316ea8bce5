"""`samaudio-jax demo`: make a corpus, train, evaluate, separate, export, re-import.

The data is the synthesiser's (default), the user's own files (`--manifest TRAIN.jsonl
--test_manifest TEST.jsonl`: shards made here) or shards already made (`--data DIR` with
DIR/train and DIR/test). Every data-dependent setting is in the config (configs/demo.py,
configs/demo_real.py); the demo only names the workdir's data, so `samaudio-jax train`
with the same config on the same shards is the same training.

Stages (each skipped when its output is already complete, so a second run resumes):
  data       DIR/data/{train,test}            write_synth_corpus, or shards of the manifests
  train      DIR/checkpoints, metrics.jsonl, tb/   the real trainer (resumes from Orbax);
             with codec.latent_scale='auto' it measures DIR/latent_scale.npy first
  eval       DIR/eval.json                    held-out mixtures, SI-SDR / SI-SDRi / SDR
  separate   DIR/separation/{mixture,target,residual}.wav, spectrograms.png
  export     DIR/export                       release-layout checkpoint (docs/export_layout.md)
  check      re-import DIR/export; the model's outputs must be identical
  distill    DIR/student (optional, `--distill S`): a student distilled from DIR/export that
             separates in S network evaluations (train/distill.py), scored on the same
             held-out mixtures as eval (DIR/student_eval.json) next to the teacher at S,
             exported to DIR/student/export
Stage results are kept in DIR/demo_state.json; the summary table is printed at the end.
"""

from __future__ import annotations

import json
import time

import numpy as np

from samaudio_jax.io_atomic import atomic_write_text
from samaudio_jax.paths import Path, as_path

STATE_FILE = "demo_state.json"
DEFAULT_EVAL_MIXTURES = 100  # held-out mixtures the eval stage scores (--eval_mixtures)


def _load_state(work: Path) -> dict:
    path = work / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_state(work: Path, state: dict) -> None:
    atomic_write_text(work / STATE_FILE, json.dumps(state, indent=2))


def prepare_config(config, work: Path, data_dir=None):
    """The demo's config with its data directory filled in (WORKDIR/data unless given)."""
    config.data.dir = str(as_path(data_dir) if data_dir else work / "data")
    return config


def _complete(data: Path) -> bool:
    return (data / "train" / "index.json").is_file() and (data / "test" / "index.json").is_file()


def stage_manifest_data(config, work: Path, manifests: tuple[str, str], say) -> None:
    """Shards of the train and test manifests in WORKDIR/data (make-shards, as the CLI)."""
    from samaudio_jax.data.manifest import read_manifest
    from samaudio_jax.data.shard_writer import write_shards

    data = work / "data"
    for split, manifest in zip(("train", "test"), manifests, strict=True):
        if (data / split / "index.json").is_file():
            say(f"data: {data / split} already complete")
            continue
        t0 = time.perf_counter()
        summary = write_shards(
            read_manifest(manifest),
            data / split,
            sample_rate=int(config.data.sample_rate),
            max_shard_bytes=int(config.data.max_shard_bytes),
            min_input_rate=int(config.data.min_input_rate),
            log=say,
            source=f"manifest {manifest}",
        )
        say(f"data: {manifest} -> {data / split}: {summary} in {time.perf_counter() - t0:.1f} s")


def stage_data(config, work: Path, say) -> None:
    from samaudio_jax.data.synth import write_synth_corpus

    data = work / "data"
    if _complete(data):
        say(f"data: {data} already complete")
        return
    s = config.data.synth
    t0 = time.perf_counter()
    write_synth_corpus(
        data,
        seed=int(config.seed),
        classes=tuple(s.classes),
        sample_rate=int(config.data.sample_rate),
        clip_seconds=float(s.clip_seconds),
        train_per_class=int(s.train_per_class),
        test_per_class=int(s.test_per_class),
        overwrite=True,
    )
    say(f"data: wrote {data} in {time.perf_counter() - t0:.1f} s")


def stage_train(config, work: Path, state: dict, say) -> None:
    from samaudio_jax.checkpoint.workdir import latest_step
    from samaudio_jax.train.loop import train

    total = int(config.train.steps)
    done = latest_step(work)
    if done is not None and done >= total:
        say(f"train: checkpoint at step {done} already reaches train.steps={total}")
        state.setdefault("train", {})["final_step"] = done
        return
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(config, str(work), print_fn=say)
    info = state.setdefault("train", {})
    info["final_step"] = result.final_step
    info["resumed_from"] = result.resumed_from
    info["wall_s"] = info.get("wall_s", 0.0) + time.perf_counter() - t0
    info["cpu_s"] = info.get("cpu_s", 0.0) + time.process_time() - c0
    if result.losses:
        info["last_loss"] = result.losses[max(result.losses)]
    if result.preempted:
        raise SystemExit("demo: training was interrupted; run the same command to resume")


def stage_eval(config, work, state, separator, step, num, say) -> None:
    from samaudio_jax.eval import evaluate as ev

    out = work / "eval.json"
    if out.is_file() and state.get("eval", {}).get("step") == step and state["eval"]["num"] == num:
        say(f"eval: {out} already holds step {step}")
        return
    t0 = time.perf_counter()
    mixtures = ev.heldout_mixtures(config.data.dir, config.data, num)
    summary = ev.evaluate(separator, mixtures, crop=ev.crop_policy(config.data))
    summary["step"] = step
    ev.write_json(out, summary)
    say(ev.format_table(summary))
    state["eval"] = {
        "step": step,
        "num": num,
        "seconds": time.perf_counter() - t0,
        **{
            k: summary["overall"][k]
            for k in ("si_sdri_median", "si_sdri_mean", "sdr_median", "irm_si_sdri_median")
        },
        "per_category": {
            c: {k: v[k] for k in ("count", "si_sdri_median", "irm_si_sdri_median")}
            for c, v in summary["per_category"].items()
        },
    }


def stage_separate(config, work, state, separator, step, say) -> None:
    import jax

    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.eval.plots import save_spectrograms
    from samaudio_jax.sample.audio_io import write_wav

    out = work / "separation"
    names = ("mixture.wav", "target.wav", "residual.wav", "spectrograms.png")
    if all((out / n).is_file() for n in names) and state.get("separate", {}).get("step") == step:
        say(f"separate: {out} already written for step {step}")
        return
    mix = ev.heldout_mixtures(config.data.dir, config.data, 1, seed=ev.EVAL_SEED + 1)[0]
    result = separator.separate([mix.mixture], [mix.description], key=jax.random.key(0))
    rate = int(config.codec.sample_rate)
    out.mkdir(parents=True, exist_ok=True)
    write_wav(out / "mixture.wav", mix.mixture, rate)
    write_wav(out / "target.wav", result.target[0], rate)
    write_wav(out / "residual.wav", result.residual[0], rate)
    save_spectrograms(
        out / "spectrograms.png", mix.mixture, result.target[0], result.residual[0], rate
    )
    state["separate"] = {"step": step, "description": mix.description, "dir": str(out)}
    say(f"separate: '{mix.description}' -> {out}")


def outputs_identical(a, b, seed: int = 0) -> float:
    """Max |difference| of the two separators' flow outputs on the same random inputs."""
    import jax
    import jax.numpy as jnp

    m = a.config.model
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (2, 16, 2 * m.latent_dim))
    mix = jax.random.normal(k[1], (2, 16, 2 * m.latent_dim))
    t = jnp.asarray([0.25, 0.75])
    outs = []
    for s in (a, b):
        ids, mask = s.text_encoder.tokenize(["a steady pure tone", "a burst of white noise"])
        feats = s.text_encoder(jnp.asarray(ids), jnp.asarray(mask))
        enc = s.codec.encode(jax.random.normal(k[2], (2, 16 * s.codec.hop_length)))
        outs.append(np.asarray(s.model(x, mix, feats, jnp.asarray(mask), t)))
        outs.append(np.asarray(enc))
    return float(max(np.max(np.abs(outs[0] - outs[2])), np.max(np.abs(outs[1] - outs[3]))))


def stage_export(config, work, state, separator, step, say) -> None:
    from samaudio_jax.sample.loading import load, save

    out = work / "export"
    if (out / "config.json").is_file() and state.get("export", {}).get("step") == step:
        say(f"export: {out} already holds step {step}")
        return
    save(separator, out)
    again = load(out)
    diff = outputs_identical(separator, again)
    if diff != 0.0:
        raise RuntimeError(f"export: the re-imported model differs (max |diff| {diff})")
    state["export"] = {"step": step, "dir": str(out), "reimport_max_abs_diff": diff}
    say(f"export: {out} (re-imported: identical outputs)")


DISTILL_OVERRIDES = dict(  # the best measured row on the demo model: docs/distillation.md
    learning_rate=2e-4, warmup_steps=10, teacher_solver="euler", teacher_steps=4
)


def student_config(config, work: Path, student_steps: int, train_steps: int):
    """The demo's config turned into a distillation run from WORKDIR/export."""
    config = config.copy_and_resolve_references()
    t = config.train
    t.steps = int(train_steps)
    t.learning_rate = DISTILL_OVERRIDES["learning_rate"]
    t.warmup_steps = min(DISTILL_OVERRIDES["warmup_steps"], int(train_steps) // 10)
    t.log_every = max(1, min(int(t.log_every), int(train_steps) // 4 or 1))
    t.checkpoint_every = max(1, int(train_steps) // 3)
    t.eval_every = 0
    t.distill.teacher = str(work / "export")
    t.distill.student_steps = int(student_steps)
    t.distill.teacher_solver = DISTILL_OVERRIDES["teacher_solver"]
    t.distill.teacher_steps = DISTILL_OVERRIDES["teacher_steps"]
    return config


def stage_distill(config, work, state, teacher, num, student_steps, train_steps, say) -> None:
    """Trains (or resumes) the student, scores it and the teacher at its step count on the
    eval mixtures, exports it."""
    from samaudio_jax.checkpoint.workdir import latest_step
    from samaudio_jax.eval import evaluate as ev
    from samaudio_jax.sample.loading import load, save
    from samaudio_jax.train.loop import train

    out = work / "student"
    done = state.get("distill", {})
    wanted = {"student_steps": student_steps, "train_steps": train_steps, "num": num}
    if (out / "export" / "config.json").is_file() and all(
        done.get(k) == v for k, v in wanted.items()
    ):
        say(f"distill: {out / 'export'} already holds the {student_steps}-step student")
        return
    cfg = student_config(config, work, student_steps, train_steps)
    if (latest_step(out) or 0) < train_steps:
        t0 = time.perf_counter()
        result = train(cfg, str(out), print_fn=say)
        if result.preempted:
            raise SystemExit("demo: distillation was interrupted; run the same command to resume")
        done["wall_s"] = done.get("wall_s", 0.0) + time.perf_counter() - t0
        if result.losses:
            done["first_loss"] = done.get("first_loss", result.losses[min(result.losses)])
            done["last_loss"] = result.losses[max(result.losses)]
    student = load(out)
    mixtures = ev.heldout_mixtures(config.data.dir, config.data, num)
    crop = ev.crop_policy(config.data)
    ours = ev.evaluate(student, mixtures, crop=crop)  # euler x student_steps (its config)
    ev.write_json(work / "student_eval.json", ours)
    theirs = ev.evaluate(_Fixed(teacher, "euler", student_steps), mixtures, crop=crop)
    save(student, out / "export")
    done.update(wanted)
    done.update(
        student_si_sdri_median=ours["overall"]["si_sdri_median"],
        student_si_sdri_mean=ours["overall"]["si_sdri_mean"],
        teacher_same_nfe_si_sdri_median=theirs["overall"]["si_sdri_median"],
        export=str(out / "export"),
    )
    state["distill"] = done
    say(
        f"distill: student (euler x {student_steps}) median SI-SDRi "
        f"{done['student_si_sdri_median']:.2f} dB vs the teacher at the same "
        f"{student_steps} evaluation(s) {done['teacher_same_nfe_si_sdri_median']:.2f} dB "
        f"-> {out / 'export'}"
    )


class _Fixed:
    """A separator whose sampling is fixed to `solver` x `steps` (the teacher at the
    student's step count)."""

    def __init__(self, separator, solver, steps):
        self.separator, self.solver, self.steps = separator, solver, steps
        self.codec = separator.codec

    def separate(self, *args, **kw):
        return self.separator.separate(*args, solver=self.solver, steps=self.steps, **kw)


def summary_table(work: Path, state: dict) -> str:
    tr, ev = state.get("train", {}), state.get("eval", {})
    rows = [
        ("steps", tr.get("final_step")),
        ("train wall s", f"{tr.get('wall_s', float('nan')):.1f}"),
        ("train cpu s", f"{tr.get('cpu_s', float('nan')):.1f}"),
        ("eval mixtures", ev.get("num")),
        ("SI-SDRi median dB", f"{ev.get('si_sdri_median', float('nan')):.2f}"),
        ("SI-SDRi mean dB", f"{ev.get('si_sdri_mean', float('nan')):.2f}"),
        ("SDR median dB", f"{ev.get('sdr_median', float('nan')):.2f}"),
        ("IRM SI-SDRi median dB", f"{ev.get('irm_si_sdri_median', float('nan')):.2f}"),
        ("checkpoints", work / "checkpoints"),
        ("metrics", work / "metrics.jsonl"),
        ("eval", work / "eval.json"),
        ("separation", work / "separation"),
        ("export", work / "export"),
    ]
    if "distill" in state:
        d = state["distill"]
        rows += [
            (
                f"student ({d['student_steps']} NFE) SI-SDRi median dB",
                f"{d['student_si_sdri_median']:.2f}",
            ),
            (
                f"teacher at {d['student_steps']} NFE median dB",
                f"{d['teacher_same_nfe_si_sdri_median']:.2f}",
            ),
            ("student export", d["export"]),
        ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _print_flush(line: str) -> None:
    print(line, flush=True)


def run_demo(
    config,
    workdir,
    *,
    eval_mixtures: int = DEFAULT_EVAL_MIXTURES,
    print_fn=_print_flush,
    manifests: tuple[str, str] | None = None,
    data_dir=None,
    distill_student_steps: int = 0,
    distill_train_steps: int = 200,
) -> dict:
    """Runs (or resumes) every stage; returns the demo state dict. print_fn(line).

    Data: the synthesiser's corpus, or `manifests` (train, test) sharded into
    WORKDIR/data, or `data_dir` holding train/ and test/ shards already. With
    `distill_student_steps` > 0 a student is distilled (stage_distill) for
    `distill_train_steps` steps."""
    from samaudio_jax.sample.loading import load

    def say(*args, **_):
        print_fn(" ".join(str(a) for a in args))

    work = as_path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    config = prepare_config(config, work, data_dir)
    state = _load_state(work)
    if data_dir:
        if not _complete(as_path(data_dir)):
            raise ValueError(f"--data: {as_path(data_dir)} needs complete train/ and test/ shards")
    elif manifests:
        stage_manifest_data(config, work, manifests, say)
    else:
        stage_data(config, work, say)
    stage_train(config, work, state, say)
    _save_state(work, state)
    separator = load(work)
    step = separator.step
    for stage in (
        lambda: stage_eval(config, work, state, separator, step, eval_mixtures, say),
        lambda: stage_separate(config, work, state, separator, step, say),
        lambda: stage_export(config, work, state, separator, step, say),
    ):
        stage()
        _save_state(work, state)
    if distill_student_steps:
        stage_distill(
            config, work, state, separator, eval_mixtures, int(distill_student_steps),
            int(distill_train_steps), say,
        )  # fmt: skip
        _save_state(work, state)
    say(summary_table(work, state))
    return state
