"""The whole package in one command: data, training, a bag, the node, a live replay, a report.

    make demo                       # sets up .venv/ first, then runs this
    .venv/bin/python -m rgbd_saliency_ros.evaluation.demo [--repo .] [--out out/demo] \
        [--retrain] [--iterations 60]

Steps, each printed as it starts. The training steps need a clone of the repository (``--repo``,
by default the current directory: ``training/`` is not installed with the package); every step
runs as a process of its own, the ROS ones with their environment passed to them (this process's
own is left as it was):

1. synthetic RGB-D videos (``python -m training.synthetic``): small training videos (8-bit relative
   depth, the data sets' convention) and one held-out video with metric depth in millimetres, as a
   real camera gives;
2. small weights (``python -m training.train`` with training/configs/tiny_cpu.yaml, a random SAM2.1
   backbone, input 96), or the ones already in ``OUT/weights`` when they were trained with the same
   settings (``--retrain`` to redo them);
3. the held-out video as a rosbag2 (``make-bag``: rgb8, 16UC1 mm, ground truth, CameraInfo);
4. the node (``python -m rgbd_saliency_ros.ros.node``) with those weights, on a private ROS domain;
5. the bag played to the node at its recorded rate, its masks recorded (``replay --live``);
6. the report: ``OUT/report/report.md``, with metrics.json, plots and an overlay video.

Two CPU cores shared with other jobs (load average 11 to 13): 8 minutes, 7 of them training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .bags import BagError
from .make_bag import MakeBagOptions, make_bag
from .node_process import node_command, private_domain_id, private_ros_env, stop_process
from .report_markdown import summary_text

TRAIN_CONFIG = "training/configs/tiny_cpu.yaml"
WEIGHTS_FILE = "weights.safetensors"  # what training.train writes into its out_dir
BACKBONE_FILE = "sam2_random_backbone.pt"
STAMP_FILE = "demo_training.json"  # what the weights in OUT/weights were trained with
STEPS = 6
# Training data: many scenes, long enough that objects reach the frame's edges and overlap (8
# videos of 12 frames left the held-out video's later frames, object at the edge, to chance).
VIDEOS, FRAMES = 64, 24
ITERATIONS = 200  # clips of 3 frames
# The frames' own size: measured on the held-out video, S 0.83 at input 64 and 0.92 at 96 (same
# data and iterations); at 64 the object's edge is lost in a 4 x 4 top feature level.
INPUT_SIZE = 96


class DemoError(RuntimeError):
    """A step failed; the message says which and where its log is."""


class _Steps:
    """Prints "[i/6] what" with the time since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.done = 0

    def __call__(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{STEPS}] {time.monotonic() - self.start:5.0f} s  {text}", flush=True)

    def note(self, text: str) -> None:
        print(f"            {text}", flush=True)


def _run(
    command: list[str], log: Path, what: str, repo: Path, env: dict[str, str] | None = None
) -> None:
    """Runs a step's command in ``repo`` (with ``env``, else this process's environment), its
    output into ``log``; DemoError on failure."""
    with open(log, "w") as f:
        done = subprocess.run(command, cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise DemoError(
            f"{what} failed (exit status {done.returncode}); last lines of {log}:\n{tail}"
        )


def _generated_with(folder: Path, **settings) -> bool:
    """Whether ``folder`` holds synthetic videos made with these settings (its synthetic.json)."""
    try:
        config = json.loads((folder / "synthetic.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    return all(config.get(k) == v for k, v in settings.items())


def make_videos(
    out: Path, repo: Path, videos: int, frames: int, size: int, bag_frames: int, log_dir: Path
) -> tuple[Path, Path]:
    """Training videos (relative8 depth) and one held-out video (mm16 depth), made again when the
    settings changed. Returns (train root, held-out video)."""
    train, heldout = out / "data" / "train", out / "data" / "heldout"
    # The held-out video: another seed (a scene the weights never saw) and metric depth (what a
    # robot's camera sends).
    for folder, settings, extra, what in (
        (train, dict(videos=videos, frames=frames, size=size), ["--seed", "0"], "train"),
        (
            heldout,
            dict(videos=1, frames=bag_frames, size=size),
            ["--seed", "1", "--depth-format", "mm16"],
            "heldout",
        ),
    ):
        if folder.exists() and not _generated_with(folder, **settings):
            shutil.rmtree(folder)
        if (folder / "synthetic.json").exists():
            continue
        command = [sys.executable, "-m", "training.synthetic", "--out", str(folder), *extra]
        for name, value in settings.items():
            command += [f"--{name}", str(value)]
        _run(command, log_dir / f"synthetic_{what}.log", f"synthetic {what} data", repo)
    return train, heldout / "video_000"


def training_key(repo: Path, iterations: int, videos: int, frames: int, size: int) -> dict:
    """What the demo's weights depend on: the training config's text, the overrides and the
    data."""
    config = (repo / TRAIN_CONFIG).read_bytes()
    return {
        "config_sha256": hashlib.sha256(config).hexdigest(),
        "iterations": iterations,
        "input_size": INPUT_SIZE,
        "videos": videos,
        "frames": frames,
        "size": size,
    }


def train_weights(
    repo: Path, train_root: Path, weights_dir: Path, iterations: int, log: Path
) -> tuple[Path, Path]:
    """Runs training.train into ``weights_dir``; returns (SAM2.1 backbone .pt, SAM-DAQ
    .safetensors)."""
    overrides = [
        f"data.root={train_root}",
        "eval_data=null",
        f"out_dir={weights_dir}",
        f"iterations={iterations}",
        f"input_size={INPUT_SIZE}",
    ]
    command = [sys.executable, "-m", "training.train", "--config", TRAIN_CONFIG, "--no-progress"]
    for item in overrides:
        command += ["--set", item]
    _run(command, log, "training", repo)
    return weights_dir / BACKBONE_FILE, weights_dir / WEIGHTS_FILE


def start_node(
    sam2: Path, weights: Path, log: Path, domain: int, repo: Path, timeout_s: float = 300.0
) -> subprocess.Popen:
    """Starts the node on ``domain`` and waits for its "ready" line (model loaded, subscribed)."""
    with open(log, "w") as f:
        node = subprocess.Popen(
            node_command(sam2, weights, {"diagnostics_period_s": 0.5}),
            cwd=repo,
            env=private_ros_env(domain),
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout_s
    while "ready:" not in log.read_text():
        if node.poll() is not None:
            raise DemoError(
                f"the node exited (status {node.returncode}); its log {log}:\n"
                f"{log.read_text()[-2000:]}"
            )
        if time.monotonic() > deadline:
            stop_process(node)
            raise DemoError(f"the node was not ready after {timeout_s:.0f} s; its log: {log}")
        time.sleep(0.2)
    return node


def demo_weights(
    out: Path,
    repo: Path,
    train_root: Path,
    step: _Steps,
    iterations: int,
    data: tuple[int, int, int],
    retrain: bool = False,
) -> tuple[Path, Path]:
    """(SAM2.1 backbone, SAM-DAQ weights) in ``out/weights``: reused when they were trained with
    the same settings (``data``: videos, frames, size), else trained again."""
    weights_dir = out / "weights"
    sam2, weights = weights_dir / BACKBONE_FILE, weights_dir / WEIGHTS_FILE
    stamp = weights_dir / STAMP_FILE
    key = training_key(repo, iterations, *data)
    # Weights from another training setting (an older demo, say) are trained again, not reused.
    current = all(p.exists() for p in (sam2, weights, stamp)) and (
        json.loads(stamp.read_text()) == key
    )
    if current and not retrain:
        step(f"weights: reusing {weights} (--retrain to train again)")
        return sam2, weights
    log = out / "logs" / "train.log"
    step(f"weights: training ({TRAIN_CONFIG}, {iterations} iterations), log {log}")
    sam2, weights = train_weights(repo, train_root, weights_dir, iterations, log)
    stamp.write_text(json.dumps(key) + "\n")
    step.note(f"wrote {weights}")
    return sam2, weights


def play_to_node(
    bag: Path, report: Path, node_files: tuple[Path, Path], repo: Path, logs: Path, step: _Steps
) -> dict:
    """Starts the node with ``node_files`` (backbone, weights) on a private ROS domain, plays
    ``bag`` to it (``rgbd-saliency replay --live`` in a process of its own, on the same domain)
    and stops it; returns the report's metrics.json content."""
    domain = private_domain_id(13)
    step(f"node: starting saliency_node on ROS_DOMAIN_ID {domain}, log {logs / 'node.log'}")
    node = start_node(*node_files, logs / "node.log", domain, repo)
    try:
        step(f"live replay: {bag} through the node, its masks recorded, log {logs / 'live.log'}")
        command = [sys.executable, "-m", "rgbd_saliency_ros.cli", "replay", "--live"]
        command += ["--bag", str(bag), "--out", str(report)]
        _run(command, logs / "live.log", "the live replay", repo, private_ros_env(domain))
    finally:
        stop_process(node)
    return json.loads((report / "metrics.json").read_text())


def run_demo(
    out: Path,
    repo: Path,
    retrain: bool = False,
    iterations: int = ITERATIONS,
    videos: int = VIDEOS,
    frames: int = FRAMES,
    size: int = 96,
    bag_frames: int = 40,
    rate_hz: float = 10.0,
) -> dict:
    """The six steps (see the module docstring) with the clone ``repo``'s training/; returns the
    report's metrics.json content."""
    if not (repo / "training" / "train.py").exists():
        raise DemoError(
            f"{repo / 'training'} not found: the demo runs in a clone of the repository "
            "(its root as --repo or the current directory)"
        )
    step = _Steps()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    step(
        f"synthetic RGB-D videos: {videos} x {frames} frames for training, {bag_frames} held "
        f"out ({size}x{size} px)"
    )
    train_root, video = make_videos(out, repo, videos, frames, size, bag_frames, logs)
    node_files = demo_weights(
        out, repo, train_root, step, iterations, (videos, frames, size), retrain
    )
    bag = out / "demo_bag"
    step(
        f"bag: {video} -> {bag} (sqlite3; rgb8, 16UC1 mm, ground truth, CameraInfo; "
        f"{rate_hz:g} Hz)"
    )
    if bag.exists():  # made from the held-out video each time: cheap, always consistent with it
        shutil.rmtree(bag)
    made = make_bag(
        video / "rgb",
        video / "depth",
        bag,
        video / "gt",
        MakeBagOptions(depth_format="mm16", rate_hz=rate_hz),
        hfov_deg=69.0,
        progress=False,
    )
    step.note(f"{made.frames} frames; depth: {made.depth_note}")
    report = out / "report"
    summary = play_to_node(bag, report, node_files, repo, logs, step)
    step(f"report: {report / 'report.md'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rgbd_saliency_ros.evaluation.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--repo",
        default=".",
        help="the clone of the repository whose training/ the demo runs (default: here)",
    )
    parser.add_argument(
        "--out", default="out/demo", help="where everything goes (relative to --repo)"
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train again even if OUT/weights holds weights"
    )
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="training iterations")
    parser.add_argument(
        "--bag-frames", type=int, default=40, help="frames of the held-out video in the bag"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second of the bag")
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    out = repo / args.out  # an absolute --out stays as it is
    started = time.monotonic()
    try:
        summary = run_demo(
            out, repo, args.retrain, args.iterations, bag_frames=args.bag_frames, rate_hz=args.rate
        )
    except (DemoError, BagError, TimeoutError, ValueError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 1
    print()
    print(summary_text(summary, out / "report"))
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
