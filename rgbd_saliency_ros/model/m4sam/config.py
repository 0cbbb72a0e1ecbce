"""Configuration of the M4-SAM model: one frozen dataclass, saved inside every weights file.

No torch here: the command line reads it from a weights file's header without building a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Sam2BackboneConfig

DEEP_UPDATE_RULES = ("every", "random")

# What a weights file may ask for (checked before anything is built from it). The published
# network: Hiera-L, input 352, rank 4, 3 experts per modality of which 2 are chosen.
CONFIG_LIMITS = {
    "input_size": 4096,
    "lora_rank": 1024,
    "experts_per_modality": 64,
    "experts_top_k": 64,
    # ~2.5 MB of state per frame at input 352 (40 MB at 1408): a bound, not a target
    "memory_frames": 1000,
    "deep_update_every": 1000,
}


@dataclass(frozen=True)
class M4SamConfig(Sam2BackboneConfig):
    """Everything that fixes the shapes of an M4-SAM model's weights, and how its memory runs."""

    backbone: str = "sam2.1_hiera_l"  # one of BACKBONE_CHANNELS (the reference: Hiera-L)
    input_size: int = 352  # square side in pixels (the reference trains and tests at 352)
    lora_rank: int = 4  # width of every MoE-LoRA bottleneck
    lora_alpha: float = 1.0  # the LoRA output is scaled by lora_alpha / lora_rank
    experts_per_modality: int = 3  # experts in each group (RGB, depth, fusion)
    experts_top_k: int = 2  # experts a group's gate picks per window
    # Frames the memory bank keeps per stream (the reference keeps a whole clip: 4 frames in its
    # test script). Beyond it the oldest frame is dropped, except the stream's first frame when
    # keep_first_frame (XMem keeps its first, annotated frame for the whole video).
    memory_frames: int = 10
    keep_first_frame: bool = True
    # After a frame is written into the memory, the hidden state is "deep-updated" (a GRU over
    # the new value) or not. "every": after frames 0, n, 2n, ... with n = deep_update_every,
    # repeatable; "random": the reference's draw, numpy's global np.random.rand() < 0.5, one draw
    # per step (repeatable only when the caller seeds numpy).
    deep_update_rule: str = "every"
    deep_update_every: int = 2

    def __post_init__(self) -> None:
        self.check_backbone()
        if self.lora_rank < 1 or self.lora_alpha <= 0:
            raise ValueError("lora_rank must be at least 1 and lora_alpha positive")
        if not 1 <= self.experts_top_k <= self.experts_per_modality:
            raise ValueError(
                f"experts_top_k {self.experts_top_k} must be in 1..experts_per_modality "
                f"({self.experts_per_modality})"
            )
        if self.memory_frames < 1:
            raise ValueError(f"memory_frames must be at least 1, got {self.memory_frames}")
        if self.deep_update_rule not in DEEP_UPDATE_RULES:
            raise ValueError(
                f"unknown deep_update_rule {self.deep_update_rule!r}; expected one of "
                f"{DEEP_UPDATE_RULES}"
            )
        if self.deep_update_every < 1:
            raise ValueError(f"deep_update_every must be at least 1, got {self.deep_update_every}")

    @property
    def memory_size(self) -> int:
        """Side of the memory's feature maps: input / 8 (44 at 352)."""
        return self.input_size // 8
