"""``rgbd-saliency``: the package's command line.

    rgbd-saliency predict --sam2-checkpoint S.pt --weights W --rgb-dir R --depth-dir D --out-dir O
    rgbd-saliency bench-step --model sam2.1_hiera_t --input-size 1024

Each subcommand parses its flags here and calls one function of the layer that does the work.
"""

from __future__ import annotations

import argparse
import sys

from .model.config import BACKBONE_CHANNELS


def _add_model_flags(p: argparse.ArgumentParser, weights_required: bool = True) -> None:
    p.add_argument("--sam2-checkpoint", required=weights_required, help="Meta's SAM2.1 checkpoint (.pt)")
    p.add_argument("--weights", required=weights_required, help="SAM-DAQ weights: the reference's .pt or this project's .safetensors")
    p.add_argument("--model", choices=sorted(BACKBONE_CHANNELS), default=None,
                   help="SAM2.1 size (default: from the weights file, else sam2.1_hiera_t)")
    p.add_argument("--input-size", type=int, default=None, help="square model input side (default: from the weights file, else 1024)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")


def _predict(args: argparse.Namespace) -> int:
    from .runtime.model_loading import load_model
    from .runtime.sequence import predict_folders

    loaded = load_model(args.sam2_checkpoint, args.weights, args.model, args.input_size, args.device)
    masks = predict_folders(loaded.model, args.rgb_dir, args.depth_dir, args.out_dir, args.probabilities)
    print(f"wrote {len(masks)} masks to {args.out_dir}")
    return 0


def _bench_step(args: argparse.Namespace) -> int:
    import torch

    from .benchmarks.step import bench_step
    from .model import SamDaqConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    config = SamDaqConfig(backbone=args.model, input_size=args.input_size)
    timings = bench_step(config, args.batch, args.repeats, args.warmup, args.device, compile=args.compile)
    print(timings.report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rgbd-saliency", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="masks for an RGB-D sequence in two image folders")
    _add_model_flags(p)
    p.add_argument("--rgb-dir", required=True, help="color frames (matched to depth by sorted name)")
    p.add_argument("--depth-dir", required=True, help="aligned depth frames, 8-bit relative depth (value / 255)")
    p.add_argument("--out-dir", required=True, help="where the 0/255 mask PNGs go")
    p.add_argument("--probabilities", action="store_true", help="also write float32 .npy probability maps at the input size")
    p.set_defaults(run=_predict)

    p = sub.add_parser("bench-step", help="median step time and its breakdown (random weights)")
    p.add_argument("--model", choices=sorted(BACKBONE_CHANNELS), default="sam2.1_hiera_t")
    p.add_argument("--input-size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1, help="streams per step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (slow first step)")
    p.set_defaults(run=_bench_step)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rgbd-saliency`` console script."""
    from .model import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"rgbd-saliency {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
