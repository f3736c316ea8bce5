"""Runs timm's PE-Core vision model on weights in the release's layout (a reference for
tests/test_vision_pe.py and bench/vision.py). Runs in its own venv (torch + torchvision +
timm), never in the project's: `python timm_pe_reference.py IN.npz OUT.npz [--repeats N]`.

IN.npz holds `model_args` (JSON text of timm model_args), `frames` (N, 3, H, W) float32 and
the tower's weights under the release's names with the `visual.` prefix (`visual.conv1.weight`,
...). OUT.npz gets `raw` (the projection, before L2 normalisation), `normalized`, and with
--repeats, `seconds` (wall time of each timed forward after one warm-up run).
"""

import json
import sys
import time

import numpy as np
import timm
import torch


def timm_state_from_release(release: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The release's PE-Core visual keys (prefix `visual.` stripped) -> timm Eva names."""
    block_names = {
        "ln_1": "norm1",
        "ln_2": "norm2",
        "attn.in_proj_weight": "attn.qkv.weight",
        "attn.in_proj_bias": "attn.qkv.bias",
        "attn.out_proj": "attn.proj",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    pool_names = {
        "attn_pool.attn.out_proj": "attn_pool.proj",
        "attn_pool.layernorm": "attn_pool.norm",
        "attn_pool.mlp.c_fc": "attn_pool.mlp.fc1",
        "attn_pool.mlp.c_proj": "attn_pool.mlp.fc2",
        "ln_pre": "norm_pre",
        "ln_post": "norm",
    }
    out = {}
    for key, value in release.items():
        v = torch.from_numpy(np.ascontiguousarray(value))
        if key == "conv1.weight":
            out["patch_embed.proj.weight"] = v
        elif key == "class_embedding":
            out["cls_token"] = v.reshape(1, 1, -1)
        elif key == "positional_embedding":
            out["pos_embed"] = v.unsqueeze(0)
        elif key == "proj":
            out["head.weight"] = v.T.contiguous()
            out["head.bias"] = torch.zeros(v.shape[1])
        elif key == "attn_pool.probe":
            out["attn_pool.latent"] = v
        elif key.startswith("attn_pool.attn.in_proj_"):
            dim = v.shape[0] // 3
            kind = "weight" if key.endswith("weight") else "bias"
            out[f"attn_pool.q.{kind}"] = v[:dim]
            out[f"attn_pool.kv.{kind}"] = v[dim:]
        elif key.startswith("transformer.resblocks."):
            index, rest = key[len("transformer.resblocks.") :].split(".", 1)
            for src, dst in block_names.items():
                if rest.startswith(src):
                    rest = dst + rest[len(src) :]
                    break
            else:
                raise KeyError(f"unmapped block key {key}")
            out[f"blocks.{index}.{rest}"] = v
        else:
            for src, dst in pool_names.items():
                if key.startswith(src + "."):
                    out[dst + key[len(src) :]] = v
                    break
            else:
                raise KeyError(f"unmapped key {key}")
    return out


def main(argv: list[str]) -> int:
    src, dst = argv[1], argv[2]
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 0
    torch.set_num_threads(int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 1)
    data = np.load(src)
    model_args = json.loads(str(data["model_args"]))
    release = {k[len("visual.") :]: data[k] for k in data.files if k.startswith("visual.")}
    model = timm.create_model("vit_pe_core_large_patch14_336", pretrained=False, **model_args)
    state = timm_state_from_release(release)
    model.load_state_dict(state, strict=True)
    try:  # timm's own converter, where present, must agree with the mapping above
        from timm.models.eva import _convert_pe

        theirs = _convert_pe(
            {"visual." + k: torch.from_numpy(v) for k, v in release.items()}, model
        )
        assert set(theirs) == set(state), sorted(set(theirs) ^ set(state))
        for k in state:
            assert torch.equal(theirs[k], state[k]), k
    except ImportError:
        pass
    model.eval()
    frames = torch.from_numpy(data["frames"])
    with torch.no_grad():
        raw = model(frames)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(frames)
            seconds.append(time.perf_counter() - start)
    raw = raw.numpy()
    normalized = raw / np.linalg.norm(raw, axis=-1, keepdims=True)
    np.savez(dst, raw=raw, normalized=normalized, seconds=np.asarray(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
