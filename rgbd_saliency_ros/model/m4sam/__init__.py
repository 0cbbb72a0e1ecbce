"""M4-SAM: SAM2.1's Hiera trunk with Modality-Aware MoE-LoRA, a U-Net decoder with Gated
Multi-Level Feature Fusion, and an XMem-style memory bootstrapped by a pseudo prior.

``M4SamConfig`` imports without torch; ``M4Sam`` (the plug-in, registered as ``m4sam``) loads
torch on first use of its name.

    from rgbd_saliency_ros.model.m4sam import M4Sam, M4SamConfig
    model = M4Sam(M4SamConfig(backbone="sam2.1_hiera_t", input_size=64))
"""

import importlib

from .config import M4SamConfig


def __getattr__(name: str):
    if name == "M4Sam":
        return importlib.import_module(".network", __name__).M4Sam
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["M4Sam", "M4SamConfig"]
