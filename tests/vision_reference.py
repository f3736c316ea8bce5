"""Random PE-Core weights in the release's layout, and timm's model run on them in the
vision venv (a subprocess: torchvision cannot live in the project's venv).

The helpers run in that venv (tests/helpers/*.py); its python comes from SAMAUDIO_VISION_PYTHON, else ~/.cache/samaudio-jax/venv-vision/bin/python (what .ci/run builds).
Build it with:
    python3 -m venv /work/venv-vision
    /work/venv-vision/bin/pip install torch==2.14.1 torchvision==0.29.1 timm numpy
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np

from samaudio_jax.keymaps import vision as vision_keys
from samaudio_jax.vision.pe import PEConfig

HELPERS = pathlib.Path(__file__).parent / "helpers"
DEFAULT_PYTHON = os.path.expanduser("~/.cache/samaudio-jax/venv-vision/bin/python")
# grid 5x5 (rows and columns both matter for RoPE), head_dim 16, 2 pool heads, output != width
SMALL_PE = PEConfig(
    image_size=40, patch_size=8, width=64, layers=2, heads=4, pool_heads=2, output_dim=48
)


def write_test_video(path, frames: np.ndarray, fps: int) -> None:
    """Writes uint8 (N, H, W, 3) frames losslessly (FFV1 in Matroska): decoded == written."""
    from samaudio_jax.vision.video import write_video

    write_video(path, frames, fps)


def vision_python() -> str | None:
    """The vision venv's python, or None when it does not exist."""
    path = os.environ.get("SAMAUDIO_VISION_PYTHON") or DEFAULT_PYTHON
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def vision_python_or_skip() -> str:
    """The vision venv's python; without it the calling test fails under CI=true, else skips."""
    import pytest

    python = vision_python()
    if python is None:
        msg = (
            "timm/torchvision reference venv not found: set SAMAUDIO_VISION_PYTHON or build "
            "/work/venv-vision (python3 -m venv /work/venv-vision && /work/venv-vision/bin/pip "
            "install torch==2.14.1 torchvision==0.29.1 timm numpy)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return python


def _run_helper(python: str, script: str, arrays: dict, extra_args=(), timeout: float = 600):
    """Runs tests/helpers/<script> IN.npz OUT.npz in the vision venv; returns OUT's arrays."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = pathlib.Path(tmp) / "in.npz", pathlib.Path(tmp) / "out.npz"
        np.savez(src, **arrays)
        cmd = [python, str(HELPERS / script), str(src), str(dst), *map(str, extra_args)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} failed ({python}):\n{proc.stderr[-4000:]}")
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}


def torchvision_resize(python: str, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision Resize(BICUBIC) of uint8 (N, H, W, 3) arrays named `<name>_<size>`."""
    return _run_helper(python, "torchvision_resize.py", frames)


def random_visual_state(cfg: PEConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Every `model.visual.*` key (relative to `vision_encoder.`) with its release shape.

    Weights ~ N(0, 1/fan_in), biases and embeddings ~ N(0, 0.1^2)-ish, norm weights near 1:
    every parameter matters to the output.
    """

    rng = np.random.default_rng(seed)
    w, p, m = cfg.width, cfg.patch_size, cfg.mlp_width
    shapes = {
        "conv1.weight": ((w, 3, p, p), 3 * p * p),
        "class_embedding": ((w,), None),
        "positional_embedding": ((1 + cfg.grid**2, w), None),
        "proj": ((w, cfg.output_dim), w),
        "attn_pool.probe": ((1, 1, w), None),
    }
    state = {}
    for rule in vision_keys.vision_rules(cfg.layers):
        name = rule.release[len(vision_keys.VISUAL) :]
        if name in shapes:
            shape, fan_in = shapes[name]
        elif name.endswith("in_proj_weight"):
            shape, fan_in = (3 * w, w), w
        elif name.endswith("in_proj_bias"):
            shape, fan_in = (3 * w,), None
        elif "c_fc.weight" in name:
            shape, fan_in = (m, w), w
        elif "c_fc.bias" in name:
            shape, fan_in = (m,), None
        elif "c_proj.weight" in name:
            shape, fan_in = (w, m), m
        elif "out_proj.weight" in name:
            shape, fan_in = (w, w), w
        else:  # biases and norm parameters of width w
            shape, fan_in = (w,), None
        if fan_in is not None:
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif name.endswith("weight"):  # LayerNorm scale
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            value = 0.1 * rng.standard_normal(shape)
        if name in ("class_embedding", "positional_embedding", "attn_pool.probe"):
            value = 0.5 * rng.standard_normal(shape)
        state[rule.release] = value.astype(np.float32)
    return state


def timm_model_args(cfg: PEConfig) -> dict:
    """timm model_args for vit_pe_core_large_patch14_336 resized to `cfg`."""
    return dict(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.width,
        depth=cfg.layers,
        num_heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        attn_pool_num_heads=cfg.pool_heads,
        attn_pool_mlp_ratio=cfg.mlp_ratio,
        ref_feat_shape=(cfg.grid, cfg.grid),
        num_classes=cfg.output_dim,
    )


def run_timm(
    python: str,
    cfg: PEConfig,
    visual_state: dict[str, np.ndarray],
    frames_nhwc: np.ndarray,
    repeats: int = 0,
    threads: int = 1,
    timeout: float = 600,
) -> dict[str, np.ndarray]:
    """timm's outputs (raw, normalized, seconds) for `frames_nhwc` (N, S, S, 3)."""
    arrays = {"visual." + k[len(vision_keys.VISUAL) :]: v for k, v in visual_state.items()}
    arrays["frames"] = np.ascontiguousarray(
        np.asarray(frames_nhwc, np.float32).transpose(0, 3, 1, 2)
    )
    arrays["model_args"] = np.asarray(json.dumps(timm_model_args(cfg)))
    args = ("--repeats", repeats, "--threads", threads)
    return _run_helper(python, "timm_pe_reference.py", arrays, args, timeout)
