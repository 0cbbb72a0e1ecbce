"""A model plug-in that only the tests define: it proves the seam (no package file knows it).

Its per-stream state is of another shape than SAM-DAQ's and grows each frame: a history of
(mean depth, mean probability) of the stream's last ``max_frames`` frames. Its step reads that
history, so a stream's output depends on its own past and on nothing else; streams whose
histories differ in length cannot share a batch.

    register_model(DepthEcho)
    save_weights(DepthEcho(EchoConfig()), "echo.safetensors")   # then predict, replay, the node
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from rgbd_saliency_ros.model import Preprocessing, SaliencyModel, StateSpec, StateTensor


@dataclass(frozen=True)
class EchoConfig:
    input_size: int = 64
    max_frames: int = 4  # rows of history kept
    # > 0: the step writes a non-finite row once the history holds this many rows, as a faulty
    # device would (the runtime must drop that state and restart the stream)
    nan_at: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EchoConfig":
        return cls(**values)


class DepthEcho(SaliencyModel):
    """Probability: a 3x3 convolution of RGB-D plus a learned gain times the history's mean."""

    name = "depth_echo_test"
    config_class = EchoConfig

    def __init__(self, config: EchoConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(4, 1, 3, padding=1)
        self.gain = nn.Parameter(torch.tensor([2.0, -3.0]))

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.config.input_size)

    def state_spec(self) -> StateSpec:
        # rows are two means of values in [0, 1]: norm at most sqrt(2)
        history = StateTensor("history", (self.config.max_frames, 2), growing_axis=0)
        return StateSpec((history,), norm_bound=2**0.5)

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        return {"history": torch.zeros(batch, 0, 2)}

    def step_state(self, rgb, depth, state):
        history = state["history"]  # (B, T, 2)
        past = history.mean(dim=1) if history.shape[1] else history.new_zeros(len(rgb), 2)
        bias = (past * self.gain).sum(dim=-1)[:, None, None, None]
        prob = torch.sigmoid(self.conv(torch.cat([rgb, depth], dim=1)) + bias)
        row = torch.stack([depth.mean(dim=(1, 2, 3)), prob.mean(dim=(1, 2, 3))], dim=-1)
        if self.config.nan_at and history.shape[1] >= self.config.nan_at:
            row = torch.full_like(row, float("nan"))
        new = torch.cat([history, row[:, None]], dim=1)[:, -self.config.max_frames :]
        return prob, {"history": new}
