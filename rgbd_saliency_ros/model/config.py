"""Configuration of the SAM-DAQ model: one frozen dataclass, saved inside every weights file."""

from __future__ import annotations

from dataclasses import dataclass

from .contract import DataclassConfig

# Trunk channels per stage (C0..C3) of each SAM2.1 Hiera size.
BACKBONE_CHANNELS = {
    "sam2.1_hiera_t": (96, 192, 384, 768),
    "sam2.1_hiera_s": (96, 192, 384, 768),
    "sam2.1_hiera_b+": (112, 224, 448, 896),
    "sam2.1_hiera_l": (144, 288, 576, 1152),
}

ADAPTERS = ("parallel", "serial", "lora")
TEMPORALS = ("qtm", "static", "memory_bank")

# Hiera's windowed position embedding tiles an 8x8 window over the stride-4 grid and three
# stride-2 poolings follow, so the input side must be a multiple of 32.
INPUT_SIZE_MULTIPLE = 32


class Sam2BackboneConfig(DataclassConfig):
    """What the configs of the models on a SAM2.1 trunk share (mixed into their frozen
    dataclasses, which have ``backbone`` and ``input_size`` fields)."""

    backbone: str
    input_size: int

    def check_backbone(self) -> None:
        """Raises ValueError for an unknown backbone or an input size the trunk cannot take."""
        if self.backbone not in BACKBONE_CHANNELS:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; expected one of {sorted(BACKBONE_CHANNELS)}"
            )
        if self.input_size < 64 or self.input_size % INPUT_SIZE_MULTIPLE:
            raise ValueError(
                f"input_size {self.input_size} must be a multiple of {INPUT_SIZE_MULTIPLE} "
                "and at least 64"
            )

    @property
    def channels(self) -> tuple[int, int, int, int]:
        """Trunk channels per stage."""
        return BACKBONE_CHANNELS[self.backbone]

    @property
    def sam2_config_file(self) -> str:
        """The sam2 package's Hydra config for this backbone."""
        return f"configs/sam2.1/{self.backbone}.yaml"


@dataclass(frozen=True)
class SamDaqConfig(Sam2BackboneConfig):
    """Everything that fixes the shapes of a SAM-DAQ model's weights."""

    backbone: str = "sam2.1_hiera_t"  # one of BACKBONE_CHANNELS
    input_size: int = 1024  # square side in pixels; the prompt Linear's width follows from it
    num_frame_queries: int = 30
    num_video_queries: int = 8  # rows of the per-stream state
    query_dim: int = 64  # width of the learned query embeddings and of the state
    adapter_width: int = 64  # hidden channels of every bi-modal adapter
    state_keep: float = 0.1  # new_state = state_keep * state + update (released code and weights)
    # In eval mode SAM2's decoder falls back to the best of its three multimask outputs when the
    # single mask is unstable (the reference). Training only ever trains the single mask, so
    # weights whose decoder did not start from Meta's (a random backbone) must run without it.
    multimask_fallback: bool = True
    # Ablations (issue: the paper's efficiency claims). "parallel" is SAM-DAQ's depth-guided
    # parallel adapters beside the frozen trunk; "serial" puts the same adapters between trunk
    # stages and "lora" adapts the trunk's attention projections: both make gradients pass through
    # the trunk.
    adapter: str = "parallel"
    lora_rank: int = 8
    # "qtm": query-driven temporal memory; "static": video queries never updated; "memory_bank":
    # SAM2's memory attention over the last memory_frames frames (the baseline SAM-DAQ replaced).
    temporal: str = "qtm"
    # SAM2.1 attends to 6 previous frames (num_maskmem 7 minus the prompt frame)
    memory_frames: int = 6

    def __post_init__(self) -> None:
        self.check_backbone()
        if self.adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {self.adapter!r}; expected one of {ADAPTERS}")
        if self.temporal not in TEMPORALS:
            raise ValueError(f"unknown temporal {self.temporal!r}; expected one of {TEMPORALS}")
        if not 1 <= self.memory_frames <= 6:
            raise ValueError(
                f"memory_frames {self.memory_frames} must be in 1..6 (SAM2.1's temporal encodings)"
            )
        if self.num_frame_queries < 1 or self.num_video_queries < 1 or self.query_dim < 1:
            raise ValueError("query counts and query_dim must be positive")

    @property
    def embed_size(self) -> int:
        """Side of the top feature level E (input / 16)."""
        return self.input_size // 16

    def check_step_inputs(self, rgb, depth, state) -> None:
        """Raises ValueError naming the first of a step's inputs whose shape does not fit this
        model: rgb (B, 3, S, S), depth (B, 1, S, S), state (B, num_video_queries, query_dim)
        (not checked for the memory-bank baseline, whose state is a growing bank). Any arrays
        with a ``shape``: torch tensors in the model, numpy arrays in every backend."""
        s, b = self.input_size, rgb.shape[0]
        expected = {
            "rgb": (rgb, (b, 3, s, s)),
            "depth": (depth, (b, 1, s, s)),
            "state": (state, (b, self.num_video_queries, self.query_dim)),
        }
        if self.temporal == "memory_bank":
            del expected["state"]
        for name, (array, shape) in expected.items():
            if tuple(array.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(array.shape)}, expected {shape}")
