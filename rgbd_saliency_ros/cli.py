r"""``rgbd-saliency``: the package's command line.

    rgbd-saliency predict --sam2-checkpoint S.pt --weights W --rgb-dir R --depth-dir D --out-dir O
    rgbd-saliency predict --sam2-checkpoint S.pt --weights W --rgb-dir R --out-dir O \
        --depth-source estimated --depth-estimator-weights depth_anything_v2_vits.pth
    rgbd-saliency segment --model efficientvit_sam_l0 --weights W.pt --image I.png \
        --box 162 135 521 466 [--point 310 190 1]... [--multimask] --out masks.npz
    rgbd-saliency bench-step --model sam2.1_hiera_t --input-size 1024
    rgbd-saliency bench-node --frames 120 --rate 4
    rgbd-saliency bench-soak --pairs 10000 --rate 20
    rgbd-saliency bench-geometry
    rgbd-saliency bench-memory --sam2-checkpoint S.pt --weights W \
        --rgb-dir R --depth-dir D --gt-dir G
    rgbd-saliency make-bag --rgb-dir R --depth-dir D --gt-dir G --out seq_bag [--storage mcap]
    rgbd-saliency replay --bag seq_bag --out out/replay --sam2-checkpoint S.pt --weights W [--live]
    rgbd-saliency eval --pred out/masks --gt data/gt --json out/metrics.json
    rgbd-saliency estimate-depth --weights depth_anything_v2_vits.pth --rgb-dir R --out-dir O

Each subcommand parses its flags here and calls one function of the layer that does the work.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from .evaluation.bags import DISTROS, STORAGES
from .model.config import BACKBONE_CHANNELS
from .runtime.backends import BACKENDS, PRECISIONS
from .runtime.encodings import DEPTH_ENCODINGS
from .runtime.qos import RELIABILITIES

# The node's input QoS also takes "auto" (follow the publisher).
INPUT_QOS = ("auto", *RELIABILITIES)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sam2-checkpoint", help="Meta's SAM2.1 checkpoint (.pt)")
    p.add_argument(
        "--weights", help="SAM-DAQ weights: the reference's .pt or this project's .safetensors"
    )
    p.add_argument(
        "--model",
        choices=sorted(BACKBONE_CHANNELS),
        default=None,
        help="SAM2.1 size (default: from the weights file, else sam2.1_hiera_t)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square model input side (default: from the weights file, else 1024)",
    )
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")


def _backend_from_args(args: argparse.Namespace):
    from .runtime.backends import create_backend

    if args.backend == "torch":
        from .runtime.model_loading import check_model_files

        check_model_files(args.sam2_checkpoint, args.weights)
    return create_backend(
        args.backend,
        sam2_checkpoint=args.sam2_checkpoint,
        weights=args.weights,
        model=args.model,
        input_size=args.input_size,
        device=args.device,
        precision=args.precision,
        engine=args.engine,
    )


def _set_threads(args: argparse.Namespace) -> None:
    """Applies ``--threads`` (0: leave torch's default)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _check_weights_pair(args: argparse.Namespace) -> None:
    """The benchmarks run given weights or random ones: both files or neither."""
    if bool(args.sam2_checkpoint) != bool(args.weights):
        raise ValueError("--sam2-checkpoint and --weights go together (neither: random weights)")


def _predict(args: argparse.Namespace) -> int:
    from .runtime.sequence import predict_folders

    estimated = args.depth_source == "estimated"
    if estimated == bool(args.depth_dir):
        raise ValueError(
            "--depth-dir is not read with --depth-source estimated"
            if estimated
            else "--depth-dir is needed (or --depth-source estimated)"
        )
    if estimated != bool(args.depth_estimator_weights):
        raise ValueError(
            "--depth-estimator-weights goes with --depth-source estimated (and only with it)"
        )
    estimation = _estimation_from_args(args) if estimated else None
    masks = predict_folders(
        _backend_from_args(args),
        args.rgb_dir,
        args.depth_dir,
        args.out_dir,
        args.probabilities,
        estimation=estimation,
    )
    print(f"wrote {len(masks)} masks to {args.out_dir}")
    return 0


def _estimation_from_args(args: argparse.Namespace):
    """The depth estimator of ``--depth-estimator-weights`` / ``--depth-estimator-input-size``
    (torch, on ``--device``)."""
    from .runtime.backends import create_estimator_backend
    from .runtime.depth_estimation import DepthEstimation

    backend = create_estimator_backend(args.depth_estimator_weights, args.device)
    return DepthEstimation(backend, args.depth_estimator_input_size)


def _segment(args: argparse.Namespace) -> int:
    from .runtime.segment import Prompt, segment_file

    points = [(x, y) for x, y, _ in args.point or ()]
    labels = []
    for *_, label in args.point or ():
        if label not in (0.0, 1.0):
            raise ValueError(f"--point LABEL is 1 (on the object) or 0 (off it), got {label:g}")
        labels.append(int(label))
    prompt = Prompt(tuple(args.box) if args.box else None, tuple(points), tuple(labels))
    result = segment_file(
        args.weights,
        args.image,
        prompt,
        args.out,
        args.model,
        args.depth,
        args.multimask,
        args.device,
    )
    areas = (result.mask_logits > 0).sum(axis=(1, 2))
    print(
        f"wrote {args.out}: {len(result.iou)} mask(s), predicted IoU "
        + ", ".join(f"{v:.3f}" for v in result.iou)
        + ", pixels "
        + ", ".join(str(int(a)) for a in areas)
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from .runtime.export import export_onnx
    from .runtime.model_loading import check_model_files, load_model

    check_model_files(args.sam2_checkpoint, args.weights)
    loaded = load_model(args.sam2_checkpoint, args.weights, args.model, args.input_size, "cpu")
    onnx_path = export_onnx(loaded.model, args.output, loaded.metadata, max_batch=args.max_batch)
    print(f"wrote {onnx_path}")
    if args.format == "tensorrt":
        from .runtime.backends.tensorrt_backend import build_engine, calibration_batches

        calibration = None
        if args.calibration_dir:
            calibration = calibration_batches(
                f"{args.calibration_dir}/rgb", f"{args.calibration_dir}/depth", onnx_path
            )
        engine = build_engine(
            onnx_path, args.device, args.precision, args.opt_batch, args.cache_dir, calibration
        )
        print(f"TensorRT engine: {engine}")
    return 0


def _bench_step(args: argparse.Namespace) -> int:

    from .benchmarks.step import bench_step
    from .model import SamDaqConfig

    _set_threads(args)
    config = SamDaqConfig(backbone=args.model, input_size=args.input_size)
    timings = bench_step(
        config, args.batch, args.repeats, args.warmup, args.device, compile=args.compile
    )
    print(timings.report())
    return 0


def _bench_streams(args: argparse.Namespace) -> int:
    import torch

    from .benchmarks.streams import bench_streams, report
    from .model import SamDaq, SamDaqConfig
    from .runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from .runtime.backends.torch_backend import TorchBackend

    _set_threads(args)
    if args.engine:
        backend = OnnxRuntimeBackend(args.engine, args.device)
    else:
        model = SamDaq(SamDaqConfig(backbone=args.model, input_size=args.input_size)).to(
            args.device
        )
        backend = TorchBackend(model)
    results = bench_streams(backend, args.streams, args.repeats)
    print(
        report(
            results,
            f"{backend.info.name} on {backend.info.device}, {backend.name} "
            f"{getattr(backend.config, 'backbone', '')}, "
            f"input {backend.preprocessing.input_size}, "
            f"{torch.get_num_threads()} threads, median of {args.repeats}",
        )
    )
    return 0


def _bench_node(args: argparse.Namespace) -> int:
    from .benchmarks.node import bench_node

    _check_weights_pair(args)
    if (args.depth_source != "sensor") != bool(args.depth_estimator_weights):
        raise ValueError("--depth-estimator-weights goes with --depth-source estimated or fill")
    result = bench_node(
        args.frames,
        args.rate,
        args.input_qos,
        args.sam2_checkpoint,
        args.weights,
        args.input_size,
        args.device,
        args.fastdds_profile,
        publisher_qos=args.publisher_qos,
        node_fastdds_profile=args.node_fastdds_profile,
        transport=args.transport,
        depth_source=args.depth_source,
        depth_estimator_weights=args.depth_estimator_weights,
        depth_estimator_input_size=args.depth_estimator_input_size or 0,
    )
    print(result.report())
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from .benchmarks.soak import bench_soak

    _check_weights_pair(args)
    result = bench_soak(
        args.pairs,
        args.rate,
        args.input_size,
        args.input_qos,
        sam2_checkpoint=args.sam2_checkpoint,
        weights=args.weights,
        device=args.device,
        fastdds_profile=args.fastdds_profile,
    )
    print(result.report())
    if args.plot:
        result.plot(args.plot)
        print(f"plot: {args.plot}")
    return 0


def _bench_geometry(args: argparse.Namespace) -> int:
    from .benchmarks.geometry import bench_geometry, report

    print(report(bench_geometry(args.repeats), args.repeats))
    return 0


def _bench_memory(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .benchmarks.memory import bench_memory, load_sequence, report

    from .runtime.backends.torch_backend import TorchBackend
    from .runtime.model_loading import check_model_files, load_model

    check_model_files(args.sam2_checkpoint, args.weights)  # it judges trained weights
    _set_threads(args)
    loaded = load_model(
        args.sam2_checkpoint, args.weights, args.model, args.input_size, args.device
    )
    sequence = load_sequence(args.rgb_dir, args.depth_dir, args.gt_dir)
    result = bench_memory(TorchBackend(loaded.model, loaded.metadata), sequence, args.steps)
    print(report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .benchmarks.suite import FULL, QUICK, run_suite, write_reports

    import time

    start = time.monotonic()
    results = run_suite(
        QUICK if args.quick else FULL,
        args.device,
        progress=lambda what: print(f"[{time.monotonic() - start:6.0f} s] {what}", flush=True),
    )
    json_path, md_path = write_reports(results, args.out)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def _make_bag(args: argparse.Namespace) -> int:
    from .evaluation.calibration import CameraIntrinsics
    from .evaluation.make_bag import BagTopics, MakeBagOptions, make_bag

    options = MakeBagOptions(
        depth_format=args.depth_format,
        depth_encoding=args.depth_encoding,
        relative_range_m=tuple(args.relative_range_m),
        relative_near_is_bright=args.relative_near_is_bright,
        rate_hz=args.rate,
        start_s=args.start_time,
        frame_id=args.frame_id,
        storage=args.storage,
        distro=args.distro,
        topics=BagTopics(
            args.color_topic, args.depth_topic, args.camera_info_topic, args.gt_topic
        ),
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        depth_max_m=args.depth_max_m,
    )
    camera = CameraIntrinsics.from_yaml(args.camera_info) if args.camera_info else None
    made = make_bag(
        args.rgb_dir, args.depth_dir, args.out, args.gt_dir, options, camera, args.hfov_deg
    )
    print(
        f"wrote {made.frames} frames to {made.path} ({options.storage}): "
        + ", ".join(f"{topic} {n}" for topic, n in made.counts.items())
    )
    print(f"depth: {made.depth_note}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from .evaluation.replay import ReplayOptions, replay_bag
    from .evaluation.report_markdown import summary_text
    from .runtime.saliency import SaliencyConfig

    options = ReplayOptions(
        color_topic=args.color_topic,
        depth_topic=args.depth_topic,
        gt_topic=args.gt_topic or None,
        gt_dir=args.gt_dir,
        gt_match=args.gt_match,
        camera_info_topic=args.camera_info_topic or None,
        sync_slop_s=args.sync_slop_s,
        probabilities=args.probabilities,
        video=not args.no_video,
        saliency=SaliencyConfig(threshold=args.threshold, reset_timeout_s=args.reset_timeout_s),
        distro=args.distro,
        depth_source=args.depth_source,
    )
    depth_flags = args.depth_source != "sensor" or args.depth_estimator_weights
    if args.live:
        from .evaluation.live import LiveOptions, live_replay

        if args.sam2_checkpoint or args.weights or args.engine or depth_flags:
            raise ValueError(
                "--live plays the bag to the running node, which has its own model and "
                "depth_source: drop the model and depth source flags"
            )
        live = LiveOptions(
            rate_factor=args.rate_factor,
            publish_reliability=args.publish_qos,
            mask_topic=args.mask_topic,
            probability_topic=args.probability_topic,
        )
        try:
            summary = live_replay(args.bag, args.out, options, live)
        except TimeoutError as e:
            print(f"rgbd-saliency replay: error: {e}", file=sys.stderr)
            return 2
    else:
        if (args.depth_source != "sensor") != bool(args.depth_estimator_weights):
            raise ValueError(
                "--depth-estimator-weights goes with --depth-source estimated or fill"
            )
        estimation = _estimation_from_args(args) if args.depth_estimator_weights else None
        summary = replay_bag(
            args.bag,
            args.out,
            _backend_from_args(args),
            options,
            args.weights or args.engine,
            estimation,
        )
    print(summary_text(summary, args.out))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .evaluation.metrics import accumulate_folders

    metrics = accumulate_folders(args.pred, args.gt)
    results = metrics.results()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(metrics)} frames: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
    return 0


def _estimate_depth(args: argparse.Namespace) -> int:
    from .runtime.backends import create_estimator_backend
    from .runtime.depth_estimation import DepthEstimation, estimate_folder

    _set_threads(args)
    backend = create_estimator_backend(args.weights, args.device)
    estimation = DepthEstimation(backend, args.input_size)
    written, times_s = estimate_folder(estimation, args.rgb_dir, args.out_dir)
    print(
        f"wrote {len(written)} depth estimates to {args.out_dir} (model time per frame: median "
        f"{statistics.median(times_s):.3f} s, {backend.info.device})"
    )
    return 0


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    """Which backend runs the model, its exported file and its precision (predict, replay)."""
    p.add_argument("--backend", choices=BACKENDS, default="torch")
    p.add_argument(
        "--engine", help="for onnxruntime and tensorrt: the file written by `rgbd-saliency export`"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="float16/bfloat16: torch on CUDA; tensorrt",
    )


def _add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _add_camera_topic_flags(p: argparse.ArgumentParser) -> None:
    """The color and depth topics of a bag (make-bag writes them, replay reads them)."""
    p.add_argument("--color-topic", default="/camera/color/image_raw")
    p.add_argument("--depth-topic", default="/camera/aligned_depth_to_color/image_raw")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="masks for an RGB-D sequence in two image folders")
    _add_model_flags(p)
    _add_backend_flags(p)
    p.add_argument(
        "--rgb-dir", required=True, help="color frames (matched to depth by sorted name)"
    )
    p.add_argument(
        "--depth-dir",
        help="aligned depth frames, 8-bit relative depth (value / 255); not with "
        "--depth-source estimated",
    )
    p.add_argument("--out-dir", required=True, help="where the 0/255 mask PNGs go")
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="also write float32 .npy probability maps at the input size",
    )
    # fill is the node's: it needs metric depth with holes, where these folders hold relative
    # depth (the data sets' 8-bit convention)
    p.add_argument(
        "--depth-source",
        choices=("sensor", "estimated"),
        default="sensor",
        help="sensor: the --depth-dir frames; estimated: each color frame's depth from a depth "
        "estimator (Depth Anything V2), no --depth-dir",
    )
    _add_estimator_flags(p)
    p.set_defaults(run=_predict)


def _add_estimator_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--depth-estimator-weights",
        help="with --depth-source other than sensor: depth_anything_v2_vit{s,b,l}.pth "
        "(official) or this project's .safetensors",
    )
    p.add_argument(
        "--depth-estimator-input-size",
        type=int,
        default=None,
        help="shorter side color frames are scaled to for the estimator (default: the weights', "
        "518; sides round to multiples of 14)",
    )


def _add_segment(sub) -> None:
    p = sub.add_parser(
        "segment", help="masks for a box and/or points on one image (a promptable model)"
    )
    p.add_argument(
        "--model",
        help="registry name, e.g. efficientvit_sam_l0 (needed for an official checkpoint; a "
        "project .safetensors names its own)",
    )
    p.add_argument("--weights", required=True, help="official checkpoint (.pt) or .safetensors")
    p.add_argument("--image", required=True, help="the color image (any size)")
    p.add_argument("--depth", help="aligned depth image, for a depth-aware model")
    p.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="box around the object, in the image's pixels",
    )
    p.add_argument(
        "--point",
        type=float,
        nargs=3,
        action="append",
        metavar=("X", "Y", "LABEL"),
        help="a point in the image's pixels, LABEL 1 on the object or 0 off it (repeatable)",
    )
    p.add_argument("--multimask", action="store_true", help="three candidate masks instead of one")
    p.add_argument(
        "--out", required=True, help="the .npz to write: low_res_logits, iou, mask_logits"
    )
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    p.set_defaults(run=_segment)


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="the step as ONNX (state in and out, dynamic batch), or a TensorRT engine"
    )
    _add_model_flags(p)
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    p.add_argument(
        "--output", required=True, help="the ONNX file to write (tensorrt: built from it)"
    )
    p.add_argument(
        "--max-batch", type=int, default=16, help="largest batch of streams the export accepts"
    )
    p.add_argument("--opt-batch", type=int, default=1, help="tensorrt: the batch size to tune for")
    p.add_argument("--precision", choices=PRECISIONS, default="float16", help="tensorrt precision")
    p.add_argument("--calibration-dir", help="tensorrt int8: folder with rgb/ and depth/ frames")
    p.add_argument(
        "--cache-dir", help="tensorrt: engine cache (default ~/.cache/rgbd_saliency_ros/engines)"
    )
    p.set_defaults(run=_export)


def _add_bench_step(sub) -> None:
    p = sub.add_parser("bench-step", help="median step time and its breakdown (random weights)")
    p.add_argument("--model", choices=sorted(BACKBONE_CHANNELS), default="sam2.1_hiera_t")
    p.add_argument("--input-size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1, help="streams per step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    _add_threads_flag(p)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the encoder (slow first step)"
    )
    p.set_defaults(run=_bench_step)


def _add_bench_streams(sub) -> None:
    p = sub.add_parser(
        "bench-streams", help="throughput of streams batched into one step versus one at a time"
    )
    p.add_argument("--model", choices=sorted(BACKBONE_CHANNELS), default="sam2.1_hiera_t")
    p.add_argument("--input-size", type=int, default=512)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--repeats", type=int, default=3)
    _add_threads_flag(p)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--engine", help="time this exported ONNX file with onnxruntime instead of torch"
    )
    p.set_defaults(run=_bench_streams)


def _add_bench_node(sub) -> None:
    p = sub.add_parser(
        "bench-node",
        help="node overhead (color stamp to mask publish, minus the step) over real DDS",
    )
    p.add_argument(
        "--sam2-checkpoint", help="with --weights: run these weights (default: random ones)"
    )
    p.add_argument("--weights", help="SAM-DAQ weights file")
    p.add_argument("--input-size", type=int, default=64, help="input size of the random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=120, help="640x480 color + depth pairs to send")
    p.add_argument(
        "--rate",
        type=float,
        default=4.0,
        help="pairs per second; below the model's rate, nothing waits",
    )
    p.add_argument(
        "--input-qos",
        choices=INPUT_QOS,
        default="auto",
        help="the node's input QoS (auto, its default: follow the publisher)",
    )
    p.add_argument(
        "--publisher-qos",
        choices=RELIABILITIES,
        default="reliable",
        help="the camera publisher's reliability",
    )
    p.add_argument(
        "--fastdds-profile",
        help="Fast DDS XML profile for all processes, e.g. config/fastdds_large_images.xml",
    )
    p.add_argument(
        "--node-fastdds-profile", help="Fast DDS XML profile for the node's process only"
    )
    p.add_argument(
        "--transport",
        choices=("raw", "compressed"),
        default="raw",
        help="compressed: JPEG color, compressedDepth PNG depth (decoded by the node)",
    )
    p.add_argument(
        "--depth-source",
        choices=("sensor", "estimated", "fill"),
        default="sensor",
        help="the node's depth_source (estimated: the camera sends color alone)",
    )
    _add_estimator_flags(p)
    p.set_defaults(run=_bench_node)


def _add_bench_soak(sub) -> None:
    p = sub.add_parser(
        "bench-soak", help="the node's memory growth and latency drift over many pairs"
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=1000,
        help="640x480 color + depth pairs to send (10000: the long run)",
    )
    p.add_argument("--rate", type=float, default=20.0, help="pairs per second")
    p.add_argument("--sam2-checkpoint", help="with --weights: these weights (default: random)")
    p.add_argument("--weights", help="SAM-DAQ weights file")
    p.add_argument("--input-size", type=int, default=64, help="input size of the random weights")
    p.add_argument("--input-qos", choices=INPUT_QOS, default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--fastdds-profile",
        help="Fast DDS XML profile for all processes, e.g. config/fastdds_large_images.xml",
    )
    p.add_argument("--plot", help="PNG file: latency by part and the node's RSS over the run")
    p.set_defaults(run=_bench_soak)


def _add_bench_geometry(sub) -> None:
    p = sub.add_parser(
        "bench-geometry",
        help="per-frame cost of the 3D outputs (object geometry, messages, "
        "registration) at 640x480",
    )
    p.add_argument("--repeats", type=int, default=50, help="timed runs of each part")
    p.set_defaults(run=_bench_geometry)


def _add_bench_memory(sub) -> None:
    p = sub.add_parser(
        "bench-memory",
        help="query memory over a long stream: state norms and S-measure at 10,000 steps",
    )
    _add_model_flags(p)
    p.add_argument("--rgb-dir", required=True)
    p.add_argument(
        "--depth-dir", required=True, help="relative depth as the data sets store it (value / 255)"
    )
    p.add_argument(
        "--gt-dir", help="ground-truth masks, matched by sorted name (S-measure when given)"
    )
    p.add_argument(
        "--steps", type=int, default=10000, help="steps, the sequence played back and forth"
    )
    _add_threads_flag(p)
    p.add_argument("--json", help="also write the figures here")
    p.set_defaults(run=_bench_memory)


def _add_make_bag(sub) -> None:
    p = sub.add_parser(
        "make-bag", help="a rosbag2 (sqlite3 or MCAP) from RGB-D image folders and ground truth"
    )
    p.add_argument(
        "--rgb-dir",
        required=True,
        help="color frames (matched to depth and ground truth by sorted name)",
    )
    p.add_argument("--depth-dir", required=True, help="depth frames aligned to color")
    p.add_argument("--gt-dir", help="ground-truth masks, written as mono8 0/255 on --gt-topic")
    p.add_argument("--out", required=True, help="the bag folder to create")
    _add_make_bag_depth_flags(p)
    p.add_argument(
        "--rate",
        type=float,
        default=30.0,
        help="frames per second: frame i is stamped start + i / rate",
    )
    p.add_argument(
        "--start-time",
        type=float,
        default=1_700_000_000.0,
        help="stamp of the first frame, seconds since the epoch",
    )
    p.add_argument("--storage", choices=STORAGES, default="sqlite3")
    p.add_argument(
        "--distro",
        choices=DISTROS,
        default="humble",
        help="message definitions stored in the bag",
    )
    p.add_argument(
        "--frame-id", default="camera_color_optical_frame", help="header frame id of every message"
    )
    _add_make_bag_message_flags(p)
    p.set_defaults(run=_make_bag)


def _add_make_bag_depth_flags(p: argparse.ArgumentParser) -> None:
    """make-bag: how the depth files are read and written."""
    p.add_argument(
        "--depth-format",
        choices=("relative8", "mm16", "tum", "sun", "nyu"),
        default="relative8",
        help="relative8: data sets' 8-bit relative depth, near dark (written as PSEUDO-metres, "
        "see --relative-range-m); mm16: 16-bit millimetres, 0 invalid; tum, sun, nyu: those "
        "data sets' files",
    )
    p.add_argument(
        "--depth-encoding",
        choices=DEPTH_ENCODINGS,
        default="16UC1",
        help="REP 118: 16UC1 mm or 32FC1 m",
    )
    p.add_argument(
        "--relative-range-m",
        type=float,
        nargs=2,
        default=(0.1, 10.0),
        metavar=("MIN", "MAX"),
        help="relative8: value v/255 becomes MIN + v/255 (MAX - MIN) metres (default: the "
        "runtime's clip range)",
    )
    p.add_argument(
        "--relative-near-is-bright", action="store_true", help="relative8 files with near = bright"
    )


def _add_make_bag_message_flags(p: argparse.ArgumentParser) -> None:
    """make-bag: camera calibration, topics and compression of the messages written."""
    p.add_argument(
        "--camera-info",
        help="camera calibration YAML (camera_info_manager format) for CameraInfo messages",
    )
    p.add_argument(
        "--hfov-deg",
        type=float,
        help="or: CameraInfo of a pinhole camera with this horizontal field of view",
    )
    _add_camera_topic_flags(p)
    p.add_argument("--camera-info-topic", default="/camera/color/camera_info")
    p.add_argument("--gt-topic", default="/ground_truth/mask")
    p.add_argument(
        "--compressed",
        nargs="?",
        const="jpeg",
        choices=("jpeg", "png"),
        help="CompressedImage topics as image_transport records them: color (JPEG, "
        "or PNG: lossless) on <color-topic>/compressed, depth on "
        "<depth-topic>/compressedDepth",
    )
    p.add_argument(
        "--jpeg-quality", type=int, default=95, help="--compressed jpeg: quality, 1..100"
    )
    p.add_argument(
        "--depth-max-m",
        type=float,
        default=10.0,
        help="--compressed: compressedDepth's depth_max; farther is no measurement",
    )


def _add_replay(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="masks, metrics and a report for a rosbag, offline or through a running node "
        "(--live)",
    )
    _add_model_flags(p)
    _add_backend_flags(p)
    p.add_argument("--bag", required=True, help="rosbag2 folder (sqlite3 or MCAP)")
    p.add_argument(
        "--out",
        required=True,
        help="where masks, metrics.json, report.md and the overlay video go",
    )
    _add_camera_topic_flags(p)
    p.add_argument(
        "--gt-topic",
        default="/ground_truth/mask",
        help="mono8 masks in the bag, matched by stamp (used if present)",
    )
    p.add_argument("--gt-dir", help="ground-truth masks in a folder instead (see --gt-match)")
    p.add_argument(
        "--gt-match",
        choices=("index", "stamp"),
        default="index",
        help="--gt-dir masks by color frame index (sorted names) or by stamp (file names in "
        "seconds)",
    )
    p.add_argument(
        "--camera-info-topic",
        default="/camera/color/camera_info",
        help="the color CameraInfo, for the 3D centroids (empty: none)",
    )
    _add_replay_output_flags(p)
    p.add_argument(
        "--depth-source",
        choices=("sensor", "estimated", "fill"),
        default="sensor",
        help="offline: the node's depth_source (estimated: color alone, the bag needs no depth; "
        "no 3D centroids)",
    )
    _add_estimator_flags(p)
    _add_replay_live_flags(p)
    p.set_defaults(run=_replay)


def _add_replay_output_flags(p: argparse.ArgumentParser) -> None:
    """replay: pairing, thresholding and what is written."""
    p.add_argument(
        "--sync-slop-s",
        type=float,
        default=0.02,
        help="largest color/depth stamp difference of a pair",
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, help="mask threshold on the probability"
    )
    p.add_argument(
        "--reset-timeout-s",
        type=float,
        default=1.0,
        help="query memory restarts after a gap this long in the stamps",
    )
    p.add_argument(
        "--probabilities", action="store_true", help="also write probability maps (8-bit PNG)"
    )
    p.add_argument("--no-video", action="store_true", help="no overlay video")
    p.add_argument(
        "--distro",
        choices=DISTROS,
        default="humble",
        help="message definitions to decode with",
    )


def _add_replay_live_flags(p: argparse.ArgumentParser) -> None:
    """replay --live: playing the bag to a running node."""
    p.add_argument(
        "--live",
        action="store_true",
        help="play the bag to a running saliency_node and record its answers",
    )
    p.add_argument(
        "--rate-factor",
        type=float,
        default=1.0,
        help="--live: play at this multiple of the recorded pace",
    )
    p.add_argument(
        "--publish-qos",
        choices=RELIABILITIES,
        default="reliable",
        help="--live: QoS of what is played",
    )
    p.add_argument("--mask-topic", default="/saliency/mask", help="--live: the node's mask topic")
    p.add_argument(
        "--probability-topic",
        default="/saliency/probability",
        help="--live: the node's probability topic",
    )


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval", help="frame-averaged saliency metrics of prediction images against ground truth"
    )
    p.add_argument(
        "--pred",
        required=True,
        help="prediction images (8-bit grey), matched to --gt by name without suffix",
    )
    p.add_argument("--gt", required=True, help="ground-truth masks (foreground > 128)")
    p.add_argument(
        "--json",
        help="write the metrics here (keys Smeasure, adpEm, meanEm, maxEm, adpFm, meanFm, maxFm, "
        "wFmeasure, MAE)",
    )
    p.set_defaults(run=_eval)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="every benchmark: bench.json and bench.md")
    p.add_argument("--quick", action="store_true", help="small settings: minutes on a CPU")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="out/bench", help="folder for bench.json and bench.md")
    p.set_defaults(run=_bench)


def _add_estimate_depth(sub) -> None:
    p = sub.add_parser(
        "estimate-depth",
        help="relative depth of each color image (Depth Anything V2), float32 .npy at its size",
    )
    p.add_argument(
        "--weights",
        required=True,
        help="depth_anything_v2_vit{s,b,l}.pth (official) or this project's .safetensors",
    )
    p.add_argument("--rgb-dir", required=True, help="color images, sorted by name")
    p.add_argument(
        "--out-dir", required=True, help="where <image name>.npy goes: relative inverse depth"
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="shorter side the images are scaled to (default: 518; sides round to multiples "
        "of 14)",
    )
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    _add_threads_flag(p)
    p.set_defaults(run=_estimate_depth)


# Each adds one subcommand, its flags and the function it runs; in the order `--help` lists them.
SUBCOMMANDS = (
    _add_predict,
    _add_segment,
    _add_export,
    _add_bench_step,
    _add_bench_streams,
    _add_bench_node,
    _add_bench_soak,
    _add_bench_geometry,
    _add_bench_memory,
    _add_make_bag,
    _add_replay,
    _add_eval,
    _add_estimate_depth,
    _add_bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``rgbd-saliency`` parser: one subcommand per entry of ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(prog="rgbd-saliency", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _is_user_error(error: Exception) -> bool:
    """Bad files or arguments, reported in one line with exit code 2 rather than a traceback.

    ``CheckpointError`` is looked up only where its module is loaded: where it is not, nothing can
    have raised one, and commands that need no model (eval, make-bag) never import torch.
    """
    checkpoints = sys.modules.get("rgbd_saliency_ros.model.checkpoints")
    kinds = (ValueError, FileNotFoundError)
    return isinstance(error, kinds) or (
        checkpoints is not None and isinstance(error, checkpoints.CheckpointError)
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rgbd-saliency`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"rgbd-saliency {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
