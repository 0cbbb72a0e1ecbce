"""EfficientViT-SAM's image encoder: the EfficientViT-L backbone and the SAM neck, in PyTorch.

    encoder = ImageEncoder(ENCODER_ARCHS["l0"])
    embedding = encoder(rgb)          # rgb (B, 3, 512, 512) normalised -> (B, 256, 64, 64)

Written from the description of mit-han-lab/efficientvit (Apache-2.0) and its parity fixture
(``../shared/fixtures/efficientvit_sam_parity/README.md``). Module attribute names follow the keys
of the official checkpoints (``stages.N.op_list.M.main.point_conv.norm.weight`` ...), so that a
checkpoint loads without a key map; the numerical order of operations (the neck's sum, the linear
attention's padding trick) follows the reference too, which keeps the outputs within float32
rounding of it.

Every activation is GELU with the tanh approximation (the reference's "gelu"); BatchNorm and
LayerNorm use eps 1e-6 (the reference's ``set_norm_eps``). The backbone runs its stages one at a
time (``run_stages``) so that a depth encoder can be fused in at a middle stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NORM_EPS = 1e-6  # every BatchNorm2d and LayerNorm of the model (the reference sets it after build)
EMBED_DIM = 256  # channels of the image embedding
EMBED_SIDE = 64  # the neck resizes every level to 64 x 64, whatever the input size


@dataclass(frozen=True)
class EncoderArch:
    """The shape of one EfficientViT-SAM image encoder (the L and XL families).

    Stage 0 is a stride-2 stem conv plus ``depths[0]`` residual blocks; every later stage halves
    the resolution in its first block (an MBConv, or a fused one for "fmb" stages, expanded by
    4 x ``expands[i]``) and then stacks ``depths[i]`` blocks of its kind. Stage i has stride
    2^(i+1).
    """

    widths: tuple[int, ...]  # output channels per stage
    depths: tuple[int, ...]  # blocks after each stage's first one
    blocks: tuple[str, ...]  # "res", "fmb" (fused MBConv), "mb" (MBConv), "att" (EfficientViT)
    expands: tuple[int, ...]  # channel expansion of each stage's blocks
    fewer_norm: tuple[bool, ...]  # stages whose blocks keep only their last BatchNorm (and biases)
    attention_scale: int  # kernel of LiteMLA's multi-scale aggregation (5 for L, 3 for XL)
    neck_stages: tuple[int, ...]  # stages the neck reads, deepest first (the sum's order)
    neck_depth: int  # fused-MBConv blocks in the neck
    neck_expand: int
    input_size: int  # square side of the encoder's input, pixels


_L = dict(
    widths=(32, 64, 128, 256, 512),
    blocks=("res", "fmb", "fmb", "mb", "att"),
    expands=(1, 4, 4, 4, 6),
    fewer_norm=(False, False, False, True, True),
    attention_scale=5,
    neck_stages=(4, 3, 2),
    neck_expand=1,
    input_size=512,
)
_XL = dict(
    widths=(32, 64, 128, 256, 512, 1024),
    blocks=("res", "fmb", "fmb", "fmb", "att", "att"),
    expands=(1, 4, 4, 4, 4, 6),
    fewer_norm=(False, False, False, False, True, True),
    attention_scale=3,
    neck_stages=(5, 4, 3),
    neck_expand=4,
    input_size=1024,
)
ENCODER_ARCHS = {
    "l0": EncoderArch(depths=(1, 1, 1, 4, 4), neck_depth=4, **_L),
    "l1": EncoderArch(depths=(1, 1, 1, 6, 6), neck_depth=8, **_L),
    "l2": EncoderArch(depths=(1, 2, 2, 8, 8), neck_depth=12, **_L),
    "xl0": EncoderArch(depths=(0, 1, 1, 2, 3, 3), neck_depth=6, **_XL),
    "xl1": EncoderArch(depths=(1, 2, 2, 4, 6, 6), neck_depth=12, **_XL),
}


def _gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (SAM's), eps 1e-6."""

    def __init__(self, channels: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        x = centred / torch.sqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvNorm(nn.Module):
    """Conv2d ("same" padding), then optionally BatchNorm2d and an activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(cout, eps=NORM_EPS) if norm else None
        self.act = _gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)


class ResBlock(nn.Module):
    """Two 3x3 convs (the first may stride)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(cin * expand)
        self.conv1 = ConvNorm(cin, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.conv2 = ConvNorm(mid, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """A 3x3 conv that expands (and may stride), then a 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(cin * expand)
        self.spatial_conv = ConvNorm(
            cin, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True
        )
        self.point_conv = ConvNorm(mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (may stride), 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(cin * expand)
        light = dict(bias=fewer_norm, norm=not fewer_norm, act=True)
        self.inverted_conv = ConvNorm(cin, mid, 1, **light)
        self.depth_conv = ConvNorm(mid, mid, 3, stride, groups=mid, **light)
        self.point_conv = ConvNorm(mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class Residual(nn.Module):
    """``main(x) + x``, or ``main(x)`` alone for a block that changes the shape."""

    def __init__(self, main: nn.Module, shortcut: bool = True) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class LiteMLA(nn.Module):
    """EfficientViT's multi-scale linear attention with a ReLU kernel, heads of width ``dim``.

    q, k, v come from a 1x1 conv; a depthwise ``scale`` x ``scale`` conv plus a grouped 1x1 conv
    of them gives a second set of heads. Each head attends linearly over all H*W positions:
    out = (v relu(k)^T) relu(q) / (1^T relu(k)^T relu(q) + eps). The reference switches to the
    quadratic form (the same quantity summed in another order) only when H*W <= dim, which never
    happens at the encoders' input sizes (their deepest stage is 16 x 16).
    """

    def __init__(self, channels: int, scale: int, dim: int = 32, eps: float = 1e-15) -> None:
        super().__init__()
        heads = channels // dim
        total = heads * dim
        self.dim, self.eps = dim, eps
        self.qkv = ConvNorm(channels, 3 * total, norm=False)
        self.aggreg = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(
                        3 * total,
                        3 * total,
                        scale,
                        padding=scale // 2,
                        groups=3 * total,
                        bias=False,
                    ),
                    nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False),
                )
            ]
        )
        self.proj = ConvNorm(2 * total, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        b, _, h, w = qkv.shape
        qkv = qkv.reshape(b, -1, 3 * self.dim, h * w)  # (B, heads, 3 dim, N)
        q = F.relu(qkv[:, :, : self.dim])
        k = F.relu(qkv[:, :, self.dim : 2 * self.dim])
        # A row of ones under v makes the last output row the normaliser 1^T k^T q.
        v = F.pad(qkv[:, :, 2 * self.dim :], (0, 0, 0, 1), value=1.0)  # (B, heads, dim+1, N)
        out = (v @ k.transpose(-1, -2)) @ q  # (B, heads, dim+1, N)
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return self.proj(out.reshape(b, -1, h, w))


class EfficientViTBlock(nn.Module):
    """Global context (LiteMLA) then local mixing (MBConv), each residual."""

    def __init__(self, channels: int, expand: int, scale: int) -> None:
        super().__init__()
        self.context_module = Residual(LiteMLA(channels, scale))
        self.local_module = Residual(MBConv(channels, channels, 1, expand, fewer_norm=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


class OpList(nn.Module):
    """Modules applied in order (``op_list``: the checkpoints' name for a sequence)."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


_LOCAL_BLOCKS = {"res": ResBlock, "fmb": FusedMBConv, "mb": MBConv}


def _stage(arch: EncoderArch, i: int, cin: int) -> OpList:
    """Stage ``i`` of ``arch`` taking ``cin`` channels."""
    width, kind, expand, fewer = (
        arch.widths[i],
        arch.blocks[i],
        arch.expands[i],
        arch.fewer_norm[i],
    )
    if i == 0:
        ops = [ConvNorm(cin, width, 3, stride=2, act=True)]
    else:  # the downsampling block: no shortcut (the shape changes)
        down = _LOCAL_BLOCKS[kind if kind in ("mb", "fmb") else "mb"]
        ops = [Residual(down(cin, width, 2, 4 * expand, fewer), shortcut=False)]
    for _ in range(arch.depths[i]):
        if kind == "att":
            ops.append(EfficientViTBlock(width, expand, arch.attention_scale))
        else:
            ops.append(Residual(_LOCAL_BLOCKS[kind](width, width, 1, expand, fewer)))
    return OpList(ops)


class Backbone(nn.Module):
    """EfficientViT-L/XL: stage i has stride 2^(i+1). ``num_stages`` (default: all of
    ``arch``'s) keeps only the first stages: a depth encoder that ends where it is fused."""

    def __init__(self, arch: EncoderArch, num_stages: int | None = None) -> None:
        super().__init__()
        cins = (3, *arch.widths[:-1])[:num_stages]
        self.stages = nn.ModuleList(_stage(arch, i, c) for i, c in enumerate(cins))

    def run_stages(self, x: torch.Tensor, start: int, stop: int) -> list[torch.Tensor]:
        """Stages ``start`` to ``stop - 1`` from ``x`` (stage ``start``'s input): their outputs."""
        outputs = []
        for stage in self.stages[start:stop]:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, C, S, S) -> every stage's output, stage i (B, widths[i], S/2^(i+1), S/2^(i+1))."""
        return self.run_stages(x, 0, len(self.stages))


class Upsample(nn.Module):
    """Bicubic resize (align_corners=False) to EMBED_SIDE x EMBED_SIDE; identity at that size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (EMBED_SIDE, EMBED_SIDE):
            return x
        return F.interpolate(x, size=(EMBED_SIDE, EMBED_SIDE), mode="bicubic", align_corners=False)


class SamNeck(nn.Module):
    """Three backbone levels -> 1x1 conv + BN each, resized to 64 x 64 and summed, then
    ``neck_depth`` residual fused MBConvs and a 1x1 conv to 256 channels."""

    def __init__(self, arch: EncoderArch) -> None:
        super().__init__()
        self.stages = arch.neck_stages
        self.input_ops = nn.ModuleList(
            OpList([ConvNorm(arch.widths[s], EMBED_DIM), Upsample()]) for s in arch.neck_stages
        )
        self.middle = OpList(
            [
                Residual(FusedMBConv(EMBED_DIM, EMBED_DIM, 1, arch.neck_expand, False))
                for _ in range(arch.neck_depth)
            ]
        )
        self.output_ops = nn.ModuleList(
            [OpList([ConvNorm(EMBED_DIM, EMBED_DIM, bias=True, norm=False)])]
        )

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """levels: every backbone stage's output -> (B, 256, 64, 64)."""
        feats = [op(levels[s]) for s, op in zip(self.stages, self.input_ops)]
        total = feats[-1]
        for f in reversed(feats[:-1]):  # f0 + (f1 + f2): the reference's order of the sum
            total = f + total
        return self.output_ops[0](self.middle(total))


class ImageEncoder(nn.Module):
    """Backbone, neck and a final LayerNorm2d: (B, 3, S, S) -> (B, 256, 64, 64) float32."""

    def __init__(self, arch: EncoderArch) -> None:
        super().__init__()
        self.backbone = Backbone(arch)
        self.neck = SamNeck(arch)
        self.norm = LayerNorm2d(EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.backbone(x))

    def embed(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Every backbone stage's output -> the embedding (the neck and the norm)."""
        return self.norm(self.neck(levels))
