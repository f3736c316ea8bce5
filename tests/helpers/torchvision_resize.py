"""torchvision's Resize(BICUBIC) on uint8 frames, the release's preprocessing (a reference for
tests/test_vision_video.py, run in the vision venv): `python torchvision_resize.py IN.npz OUT.npz`.

Each IN array is named `<anything>_<size>` and holds (N, H, W, 3) uint8; OUT gets the same
names with (N, size, size, 3) uint8.
"""

import sys

import numpy as np
import torch
import torchvision.transforms as T


def main(argv: list[str]) -> int:
    data, out = np.load(argv[1]), {}
    for name in data.files:
        size = int(name.rsplit("_", 1)[1])
        x = torch.from_numpy(data[name]).permute(0, 3, 1, 2)
        y = T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC)(x)
        out[name] = y.permute(0, 2, 3, 1).numpy()
    np.savez(argv[2], **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
