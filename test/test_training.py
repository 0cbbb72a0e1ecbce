"""The training entry point: configuration, loss and schedule, resume, DDP (gloo, 2 processes) and
a smoke training on synthetic videos that must learn and load into ``rgbd-saliency predict``.

    .venv/bin/python -m pytest -q test/test_training.py
"""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import SamDaq
from rgbd_saliency_ros.model.checkpoints import read_weights_metadata
from training import synthetic
from training.config import TrainConfig, load_config
from training.datasets import find_videos
from training.train import (
    RANDOM_BACKBONE_FILE,
    STATE_FILE,
    Processes,
    _Run,
    _step,
    build_model,
    evaluate_videos,
    load_train_state,
    lr_at,
    train,
)
from training.train import main as train_main

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "training" / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread for each test: on a shared 2-core machine, two threads that wait for each
    other ran ten times slower than one while other processes took the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Synthetic training and held-out videos at 64 x 64, as the tiny CPU config expects."""
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(
        root / "train", synthetic.SyntheticConfig(videos=48, frames=8, size=64, seed=0)
    )
    synthetic.generate(
        root / "heldout", synthetic.SyntheticConfig(videos=4, frames=8, size=64, seed=1)
    )
    return root


def tiny(videos, out_dir, *overrides):
    """The tiny CPU config on the fixture's videos, written to ``out_dir``."""
    return load_config(
        CONFIGS / "tiny_cpu.yaml",
        [
            f"data.root={videos / 'train'}",
            f"eval_data.root={videos / 'heldout'}",
            f"out_dir={out_dir}",
            *overrides,
        ],
    )


# ------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("name", ["rdvs", "vidsod100", "dvisal"])
def test_paper_configs_hold_the_papers_setting(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert (cfg.backbone, cfg.input_size, cfg.clip_frames, cfg.iterations) == (
        "sam2.1_hiera_l",
        1024,
        10,
        2000,
    )
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.schedule) == (1e-4, 0.05, 1, "constant")
    assert cfg.sam2_checkpoint.endswith("sam2.1_hiera_large.pt")
    assert cfg.data.layout == name and cfg.eval_data.layout == name
    assert cfg.data.depth.mode == "relative"


def test_overrides_and_unknown_keys(tmp_path):
    cfg = load_config(
        CONFIGS / "tiny_cpu.yaml",
        [
            "iterations=7",
            "data.root=/x",
            "data.depth.mode=metric",
            "data.depth.conversion.max_depth_m=4.5",
            "sam2_checkpoint=null",
        ],
    )
    assert cfg.iterations == 7 and cfg.data.root == "/x" and cfg.sam2_checkpoint is None
    assert cfg.data.depth.mode == "metric" and cfg.data.depth.conversion.max_depth_m == 4.5
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown training config keys \['iteratons'\]"):
        load_config(CONFIGS / "tiny_cpu.yaml", ["iteratons=7"])
    with pytest.raises(ValueError, match="unknown depth reading fields"):
        load_config(CONFIGS / "tiny_cpu.yaml", ["data.depth.units=1000"])
    with pytest.raises(ValueError, match="input_size 100"):
        load_config(CONFIGS / "tiny_cpu.yaml", ["input_size=100"])
    assert (
        train_main(["--config", str(CONFIGS / "tiny_cpu.yaml"), "--set", "schedule=linear"]) == 2
    )


def test_schedule_warmup_cosine_poly():
    cfg = TrainConfig(
        iterations=110, lr=1e-3, warmup_iterations=10, schedule="cosine", min_lr=1e-5
    )
    assert lr_at(cfg, 0) == pytest.approx(1e-4) and lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 10) == pytest.approx(1e-3) and lr_at(cfg, 60) == pytest.approx(
        (1e-3 + 1e-5) / 2
    )
    assert lr_at(cfg, 110) == pytest.approx(1e-5)
    poly = TrainConfig(iterations=100, lr=1e-3, schedule="poly", poly_power=0.9)
    assert lr_at(poly, 50) == pytest.approx(1e-3 * 0.5**0.9)
    assert lr_at(TrainConfig(lr=2e-4), 1234) == 2e-4


def test_loss_is_bce_plus_half_intermediate_bce():
    g = torch.Generator().manual_seed(0)
    probs, inter = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    gt = (torch.rand(2, 3, 64, 64, generator=g) > 0.7).float()
    total, mask, intermediate = SamDaq.loss(probs, inter, gt, 0.5)
    small = F.interpolate(gt, size=(4, 4), mode="bilinear", align_corners=False)
    expected_mask = -(gt * probs.log() + (1 - gt) * (1 - probs).log()).mean()
    expected_inter = -(small * inter.log() + (1 - small) * (1 - inter).log()).mean()
    assert mask.item() == pytest.approx(expected_mask.item(), rel=1e-5)
    assert intermediate.item() == pytest.approx(expected_inter.item(), rel=1e-5)
    assert total.item() == pytest.approx(
        expected_mask.item() + 0.5 * expected_inter.item(), rel=1e-5
    )


class _Sqrt(torch.nn.Module):
    """A stand-in for ClipLoss whose loss sqrt(w - offset) has an infinite gradient at w = offset
    (an overflow in a backward pass) while the loss itself stays finite."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))
        self.offset = 1.0

    def forward(self, rgb, depth, gt):
        total = torch.sqrt(self.w - self.offset)
        return total, total, total


def test_a_non_finite_gradient_skips_the_step_and_five_in_a_row_stop_the_run():
    net = _Sqrt()
    run = _Run(
        cfg=TrainConfig(),
        procs=Processes(0, 1, torch.device("cpu")),
        out=None,
        sam2_checkpoint="",
        model=None,
        net=net,
        trained=[net.w],
        optimizer=torch.optim.SGD([net.w], lr=1.0),
        scaler=torch.amp.GradScaler("cuda", enabled=False),
        autocast_dtype=None,
        loader=None,
        start=0,
        stop=10,
    )
    batch = {k: torch.zeros(1) for k in ("rgb", "depth", "gt")}
    batches = iter(lambda: batch, None)
    parts, grad_norm, skipped = _step(run, 0, 0.1, batches, skipped=0)
    assert grad_norm == float("inf") and skipped == 1 and parts[0] == 0.0
    assert net.w.item() == 1.0  # not stepped
    with pytest.raises(FloatingPointError, match="5 non-finite gradients in a row"):
        _step(run, 5, 0.1, batches, skipped=4)
    net.offset = 0.0  # sqrt(w): gradient 0.5 at w = 1
    parts, grad_norm, skipped = _step(run, 6, 0.1, batches, skipped=3)
    assert (parts[0], grad_norm, skipped) == (1.0, 0.5, 0)
    assert net.w.item() == pytest.approx(1.0 - 0.1 * 0.5)  # stepped at the step's lr


# ------------------------------------------------------------------------------------ resume


def test_resume_continues_as_the_uninterrupted_run(videos, tmp_path):
    settings = [
        "iterations=4",
        "save_every=2",
        "eval_data=null",
        "schedule=cosine",
        "warmup_iterations=1",
    ]
    whole = train(tiny(videos, tmp_path / "whole", *settings), progress=False)
    first = train(tiny(videos, tmp_path / "parts", *settings), stop_after=2, progress=False)
    assert first.weights is None and first.iterations_done == 2
    state = torch.load(tmp_path / "parts" / STATE_FILE, map_location="cpu", weights_only=True)
    assert state["iteration"] == 2 and state["sam2_checkpoint"].endswith(RANDOM_BACKBONE_FILE)
    rest = train(
        tiny(videos, tmp_path / "parts", *settings), resume=tmp_path / "parts", progress=False
    )
    assert rest.start_iteration == 2 and len(rest.losses) == 2
    assert rest.losses == pytest.approx(whole.losses[2:], rel=1e-5)

    a = load_train_state(tmp_path / "whole")["model"]
    b = load_train_state(tmp_path / "parts")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    with open(tmp_path / "parts" / "loss.csv") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="the state is for"):
        train(
            tiny(videos, tmp_path / "other", *settings, "input_size=96"),
            resume=tmp_path / "parts",
            progress=False,
        )


# ---------------------------------------------------------------------------------- ablations


def test_ablation_keys_train_and_save_that_variant(videos, tmp_path):
    from safetensors.torch import load_file

    from rgbd_saliency_ros.runtime.model_loading import load_model

    settings = ["adapter=lora", "temporal=static", "iterations=1", "clip_frames=2"]
    torch.set_num_threads(2)  # the run's threads: 1 (tiny_cpu.yaml); the caller's come back
    result = train(tiny(videos, tmp_path / "run", *settings, "eval_data=null"), progress=False)
    assert torch.get_num_threads() == 2
    saved = load_file(str(result.weights))
    lora_b = [v for k, v in saved.items() if k.endswith(".lora_b")]
    # LoRA's B factors start at zero: the loop's one step moved them.
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)
    # LoRA keeps only the final RGB-depth fusion adapter.
    assert any(k.startswith("adapters.0.") for k in saved)
    assert not any(k.startswith("adapters.1.") for k in saved)

    model = load_model(result.sam2_checkpoint, result.weights, None, None, "cpu").model
    assert (model.config.adapter, model.config.temporal) == ("lora", "static")
    g = torch.Generator().manual_seed(0)
    state = model.initial_tensor(1)
    with torch.no_grad():
        _, new = model.step(
            torch.randn(1, 3, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g), state
        )
    assert torch.equal(new, state)  # static queries: the state never changes


def test_the_memory_bank_baseline_trains_and_runs_several_streams(videos, tmp_path):
    """The tiny CPU configuration with ``temporal: memory_bank``: clips of 3 frames (the bank is
    read and written inside the clip), weights that load and answer two streams."""
    from rgbd_saliency_ros.runtime.backends import create_backend
    from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime

    settings = ["temporal=memory_bank", "memory_frames=2", "iterations=1", "clip_frames=3"]
    result = train(tiny(videos, tmp_path / "run", *settings, "eval_data=null"), progress=False)
    assert len(result.losses) == 1 and math.isfinite(result.losses[0])
    backend = create_backend(
        "torch", sam2_checkpoint=str(result.sam2_checkpoint), weights=str(result.weights)
    )
    assert backend.config.temporal == "memory_bank" and backend.state_spec.growing
    runtime = SaliencyRuntime(backend)
    rgb, depth = np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 0.5, np.float32)
    for t in range(3):
        streams = ["a", "b"] if t else ["a"]  # "b" joins late: banks of two lengths
        pairs = [FramePair(s, 0.1 * t, rgb, depth, depth_is_metric=False) for s in streams]
        results = runtime.run([runtime.prepare(p) for p in pairs])
        assert [r.stream_id for r in results] == streams
        assert all(np.isfinite(r.probability).all() for r in results)
    assert runtime.memory.peek("a")["bank"].shape[0] == 2


# ---------------------------------------------------------------------------------------- DDP


def test_ddp_two_gloo_processes_match_one_process_with_both_clips(videos, tmp_path):
    """Two processes with one clip each average their gradients: the same step as one process
    with a batch of both clips (the clip indices are the same by construction)."""
    common = [
        f"data.root={videos / 'train'}",
        "eval_data=null",
        "iterations=2",
        "save_every=1",
        "warmup_iterations=0",
        "schedule=constant",
        "clip_frames=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.train",
        "--config",
        str(CONFIGS / "tiny_cpu.yaml"),
        "--no-progress",
        *[a for s in common + [f"out_dir={tmp_path / 'ddp'}"] for a in ("--set", s)],
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    cfg = load_config(
        CONFIGS / "tiny_cpu.yaml", common + ["batch_size=2", f"out_dir={tmp_path / 'one'}"]
    )
    single = train(cfg, progress=False)
    with open(tmp_path / "ddp" / "loss.csv") as f:
        ddp_losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert ddp_losses == pytest.approx(
        single.losses, rel=1e-4
    )  # the second loss follows the first update
    init = build_model(cfg, single.sam2_checkpoint).trained_state_dict()
    a = load_train_state(tmp_path / "ddp")["model"]
    b = load_train_state(tmp_path / "one")["model"]
    step_a = torch.cat([(a[k] - init[k]).flatten() for k in init])
    step_b = torch.cat([(b[k] - init[k]).flatten() for k in init])
    # Two Adam steps move weights by up to about 2 lr (6e-4); float32 rounding of a batch of two
    # against two batches of one changes that by about 1e-5 at most.
    assert step_a.abs().max() > 3e-4
    torch.testing.assert_close(step_a, step_b, rtol=0, atol=1e-4)
    assert (tmp_path / "ddp" / "weights.safetensors").is_file()


# ------------------------------------------------------------------------------- smoke training


@pytest.mark.slow
def test_smoke_training_learns_and_its_weights_load_into_predict(videos, tmp_path):
    cfg = tiny(videos, tmp_path / "run")
    result = train(cfg, progress=False)
    losses = np.array(result.losses)
    first, last = losses[:20].mean(), losses[-50:].mean()

    untrained = build_model(cfg, result.sam2_checkpoint)
    before = evaluate_videos(untrained, find_videos(cfg.eval_data))
    after = result.eval
    print(
        f"\nsmoke training: loss {first:.3f} (first 20) -> {last:.3f} (last 50); "
        f"held-out S-measure {before['Smeasure']:.3f} untrained -> {after['Smeasure']:.3f} "
        f"trained, MAE {before['MAE']:.3f} -> {after['MAE']:.3f} over {after['frames']} frames"
    )
    assert last < 0.6 * first
    assert after["Smeasure"] > before["Smeasure"] + 0.1
    # Measured 0.81; clips of 2 with SAM2's untrained multimask fall-back left it at 0.67.
    assert after["Smeasure"] > 0.72
    assert after["MAE"] < before["MAE"]

    metadata = read_weights_metadata(result.weights)
    assert (metadata["config"]["backbone"], metadata["config"]["input_size"]) == (
        "sam2.1_hiera_t",
        64,
    )
    assert metadata["config"]["multimask_fallback"] is False  # predict runs what training trained
    assert metadata["depth_conversion"]["near_is_bright"] is False
    assert metadata["training"]["iterations"] == cfg.iterations

    heldout = videos / "heldout" / "video_000"
    out = tmp_path / "masks"
    code = cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            result.sam2_checkpoint,
            "--weights",
            str(result.weights),
            "--rgb-dir",
            str(heldout / "rgb"),
            "--depth-dir",
            str(heldout / "depth"),
            "--out-dir",
            str(out),
        ]
    )
    assert code == 0
    masks = sorted(out.glob("*.png"))
    assert len(masks) == 8
    assert cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == (64, 64)
