"""Random weights in the real file formats, for tests, benchmarks and the smoke training run: no
pretrained weights can be downloaded on the development machines.

    sam2_pt, samdaq = write_random_weights("out/weights", input_size=64)   # both files, seed 0
    write_random_sam2_checkpoint(SamDaqConfig(input_size=64), seed=3, path=Path("sam2.pt"))

Draws come from their own seed inside ``torch.random.fork_rng``: the caller's random state is
left as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoints import save_weights
from .config import SamDaqConfig
from .samdaq import SamDaq
from .sam2_parts import build_sam2_parts


def write_random_sam2_checkpoint(config: SamDaqConfig, seed: int, path: str | os.PathLike) -> Path:
    """A SAM2.1 checkpoint in Meta's format (``{"model": SAM2Base state_dict}``) for
    ``config``'s backbone and input size, with weights drawn from ``seed``; written atomically."""
    from sam2.build_sam import build_sam2

    path = Path(path)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sam2 = build_sam2(
            config.sam2_config_file,
            device="cpu",
            hydra_overrides_extra=[f"++model.image_size={config.input_size}"],
        )
    tmp = path.with_suffix(".tmp")
    torch.save({"model": sam2.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def write_random_weights(
    folder: str | os.PathLike,
    input_size: int = 64,
    model: str = "sam2.1_hiera_t",
    seed: int = 0,
    **config_fields,
) -> tuple[Path, Path]:
    """``folder/sam2.pt`` (Meta's format) and ``folder/samdaq.safetensors`` (this project's),
    random values from ``seed``; ``config_fields``: other SamDaqConfig fields (``temporal``...).
    Returns both paths."""
    folder = Path(folder)
    config = SamDaqConfig(backbone=model, input_size=input_size, **config_fields)
    sam2 = write_random_sam2_checkpoint(config, seed, folder / "sam2.pt")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        samdaq = SamDaq(config, build_sam2_parts(config))
    save_weights(samdaq, folder / "samdaq.safetensors")
    return sam2, folder / "samdaq.safetensors"
