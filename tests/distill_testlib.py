"""A tiny trained teacher and one distillation run from it, shared by the nfe-sweep and
distillation tests: configs/demo.py's recipe (clean prediction, gated mixture head) at 32
wide on a small synthetic corpus.

Both are made once per test session by the real trainer in `samaudio-jax train` subprocesses
(train_testlib.subprocess_env: fast CPU compiles, the shared compilation cache), because
compilation, not training, is what these runs cost. The distillation run is made twice:
one copy runs uninterrupted (the student the tests evaluate, and the reference losses) and
the other is killed with SIGKILL part-way (the resume test finishes it)."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import signal
import subprocess

from train_testlib import PYTHON, REPO, subprocess_env

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

# The student: euler x STUDENT_STEPS, distilled from the teacher's euler x 8.
STUDENT_STEPS = 2
DISTILL_STEPS = 30
KILL_AT = 8  # the killed copy gets SIGKILL from this step on, once checkpoint 5 is in
DISTILL = [
    f"--config.train.steps={DISTILL_STEPS}",
    "--config.train.warmup_steps=0",
    "--config.train.learning_rate=1e-3",
    "--config.train.checkpoint_every=5",
    f"--config.train.distill.student_steps={STUDENT_STEPS}",
    "--config.train.distill.teacher_steps=8",
]

_CACHE: dict = {}


def demo_config(data_dir, extra: list[str] | None = None):
    from samaudio_jax.cli.config_loader import load_config

    return load_config(
        REPO / "configs" / "demo.py", TEACHER + [f"--config.data.dir={data_dir}"] + (extra or [])
    )


def demo_cli(workdir, data_dir, extra: list[str], env: dict) -> subprocess.Popen:
    """`samaudio-jax train` on the shrunk demo config, stdout and stderr merged."""
    cmd = [PYTHON, "-m", "samaudio_jax.cli.train", "--config", str(REPO / "configs" / "demo.py")]
    cmd += ["--workdir", str(workdir), *TEACHER, f"--config.data.dir={data_dir}", *extra]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def trained_teacher(tmp_path_factory):
    """(data dir, teacher workdir), made on first use in this session."""
    if "teacher" not in _CACHE:
        from samaudio_jax.data.synth import write_synth_corpus

        root = tmp_path_factory.mktemp("distill-teacher")
        data = root / "data"
        write_synth_corpus(
            data, seed=0, sample_rate=8000, clip_seconds=0.256, train_per_class=8,
            test_per_class=4, overwrite=True,
        )  # fmt: skip
        run = demo_cli(
            root / "teacher", data, [f"--config.train.steps={TEACHER_STEPS}"], subprocess_env()
        )
        out = run.communicate(timeout=600)[0]
        assert run.returncode == 0, out[-4000:]
        _CACHE["teacher"] = (data, root / "teacher")
    return _CACHE["teacher"]


@dataclasses.dataclass(frozen=True)
class DistillRuns:
    data: pathlib.Path
    teacher: pathlib.Path
    extra: list[str]  # the distillation run's overrides (resume with the same)
    env: dict
    uninterrupted: pathlib.Path  # workdir of the copy that ran to the end
    uninterrupted_rc: int
    uninterrupted_out: str
    killed: pathlib.Path  # workdir of the copy killed at KILL_AT
    killed_rc: int
    killed_out: str


def _read_until(run: subprocess.Popen, done) -> list[str]:
    """Lines of run's output up to and including the first for which done(line) is true."""
    lines = []
    for line in run.stdout:
        lines.append(line)
        if done(line):
            break
    return lines


def distill_runs(tmp_path_factory) -> DistillRuns:
    """The distillation run from the trained teacher, twice: one copy to the end, and one
    killed with SIGKILL once it has reported step KILL_AT and committed checkpoint 5. The
    second copy starts when the first has compiled its step (the compilation cache then
    serves it). Made on first use in this session."""
    if "distill" not in _CACHE:
        data, teacher = trained_teacher(tmp_path_factory)
        root = tmp_path_factory.mktemp("distill-student")
        extra = DISTILL + [f"--config.train.distill.teacher={teacher}"]
        env = subprocess_env()
        full = demo_cli(root / "uninterrupted", data, extra, env)
        full_lines = _read_until(full, lambda line: line.startswith("step 1/"))
        killed = demo_cli(root / "killed", data, extra, env)

        def due(line):
            m = re.match(r"^step (\d+)/", line)
            return bool(m and int(m.group(1)) >= KILL_AT)

        lines = _read_until(
            killed, lambda line: due(line) and (root / "killed/checkpoints/5").is_dir()
        )
        killed.send_signal(signal.SIGKILL)
        lines.append(killed.communicate(timeout=600)[0])
        full_lines.append(full.communicate(timeout=600)[0])
        _CACHE["distill"] = DistillRuns(
            data, teacher, extra, env,
            root / "uninterrupted", full.returncode, "".join(full_lines),
            root / "killed", killed.returncode, "".join(lines),
        )  # fmt: skip
    return _CACHE["distill"]
