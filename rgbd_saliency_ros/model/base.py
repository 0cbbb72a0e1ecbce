"""The model contract: what a model plug-in of ``model/`` implements, in PyTorch.

A plug-in is an ``nn.Module`` subclass of ``SaliencyModel`` registered under a name (see
``registry.py``). It owns its configuration (a frozen dataclass with ``to_dict``/``from_dict``,
saved in its weights), its preprocessing needs, its per-stream state and its step::

    model = MyModel(MyConfig(input_size=512))
    state = model.initial_state(batch=2)            # {name: (2, ...) tensor}
    prob, state = model.step_state(rgb, depth, state)

``step_state`` is pure: the state goes in and comes out, nothing is kept on the module. Everything
above ``model/`` sees only ``preprocessing()`` and ``state_spec()`` (plain Python, see
``contract.py``) and treats the state as opaque.

A depth source (``DepthEstimator``: Depth Anything V2) is a plug-in of its own kind: an image in,
relative depth out, no state, an input size that follows the frame. It feeds a saliency model's
depth input and is registered, saved and loaded like one (``ModelPlugin``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import nn

from .contract import EstimatorPreprocessing, Preprocessing, StateSpec


class ModelPlugin(nn.Module):
    """What the registry and ``checkpoints`` need of any plug-in: a name, a config, its trained
    parameters, and optionally a reader of its reference's checkpoint format."""

    name: ClassVar[str] = ""  # the registry key, stored in the weights files it writes
    config_class: ClassVar[type] = object
    # Integer config fields -> the largest value a weights file may ask for (None: SAM-DAQ's
    # ``checkpoints.CONFIG_LIMITS``), checked before a model is built from a file.
    config_limits: ClassVar[dict[str, int] | None] = None
    config: Any

    def load_reference_weights(self, path: str | os.PathLike) -> None:
        """Loads the reference implementation's own checkpoint format (tensors only)."""
        raise NotImplementedError(f"model {self.name} reads no reference checkpoint format")

    @classmethod
    def is_trained_key(cls, key: str) -> bool:
        """True for the parameters this model trains: what this project's weights files hold."""
        return True

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parameters (``is_trained_key``)."""
        return {k: v for k, v in self.state_dict().items() if self.is_trained_key(k)}


class SaliencyModel(ModelPlugin):
    """Base of every saliency model plug-in. Subclasses set ``name`` and ``config_class`` and
    implement the methods that raise ``NotImplementedError``."""

    # The separate pretrained checkpoint it loads with ``load_backbone`` ("": none), for messages.
    backbone_checkpoint: ClassVar[str] = ""

    def preprocessing(self) -> Preprocessing:
        """Input size, normalisation and depth convention the step expects."""
        raise NotImplementedError

    def state_spec(self) -> StateSpec:
        """The per-stream state: its tensors, how they batch, when it is healthy."""
        raise NotImplementedError

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """The state of ``batch`` streams at their first frame: {name: (batch, ...) float32}."""
        raise NotImplementedError

    def step_state(
        self, rgb: torch.Tensor, depth: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One frame of B streams whose states stack: rgb (B, 3, S, S) normalised as
        ``preprocessing()`` says, depth (B, 1, S, S) in [0, 1] (zeros when the model takes none).
        Returns (prob (B, 1, S, S) float32 in [0, 1], the new state)."""
        raise NotImplementedError

    def export_step(self) -> nn.Module:
        """A module whose ``forward(rgb, depth, *state tensors in state_spec order)`` returns
        ``(prob, *new state tensors)``: what ONNX export traces. Only for fixed-shape states."""
        return _ExportedStep(self)

    def load_backbone(self, path: str | os.PathLike) -> None:
        """Loads pretrained weights of the frozen parts (e.g. Meta's SAM2.1 checkpoint)."""
        raise NotImplementedError(f"model {self.name} has no separate backbone checkpoint")


class DepthEstimator(ModelPlugin):
    """Base of a depth-source plug-in: relative depth of a batch of images, no per-stream state.

    Not a ``SaliencyModel``: it gives no probabilities and keeps no memory, and its input is not
    a fixed square (``preprocessing().keep_aspect_ratio``), so it has no ``step_state``.
    """

    def preprocessing(self) -> EstimatorPreprocessing:
        """Input size rule and normalisation the estimator expects."""
        raise NotImplementedError

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, h, w) float32 normalised as ``preprocessing()`` says, h and w multiples of
        its ``multiple_of`` -> (B, h, w) float32 relative depth (units of the model)."""
        raise NotImplementedError


class _ExportedStep(nn.Module):
    """``step_state`` with the state as positional tensors (ONNX has no dict inputs)."""

    def __init__(self, model: SaliencyModel) -> None:
        super().__init__()
        self.model = model
        self.names = model.state_spec().names

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, *state: torch.Tensor):
        prob, new = self.model.step_state(rgb, depth, dict(zip(self.names, state)))
        return (prob, *(new[n] for n in self.names))
