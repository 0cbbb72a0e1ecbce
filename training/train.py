"""Training SAM-DAQ on RGB-D video clips: the frozen SAM2.1 backbone runs under no_grad, the
adapters, the query memory, the self-inference head and SAM2's mask decoder and memory encoder
learn.

    python -m training.train --config training/configs/rdvs.yaml
    python -m training.train --config training/configs/tiny_cpu.yaml --set data.root=data/synthetic
    python -m training.train --config training/configs/rdvs.yaml --resume runs/rdvs
    torchrun --standalone --nproc_per_node 4 -m training.train --config training/configs/rdvs.yaml

Each iteration: clips of ``clip_frames`` frames in time order from one video, loss
BCE(P, GT) + intermediate_weight * BCE(intermediate, GT resized bilinearly to S/16), AdamW on the
trained parameters only. What ``out_dir`` receives:

    weights.safetensors      the trained parameters in the project's format (model config, depth
                             conversion and a training summary in its metadata): what predict,
                             the node and the replay load
    train_state.pt           trained parameters + optimizer state + iteration, for --resume
                             (tensors and plain values only: loads with
                             torch.load(weights_only=True))
    loss.csv                 loss per iteration (and TensorBoard under tensorboard/ when installed)
    config.yaml              the resolved configuration
    sam2_random_backbone.pt  only when sam2_checkpoint is null: the random (seeded) SAM2.1 backbone
                             used, in Meta's format, to pass to predict's --sam2-checkpoint
    eval.json                only with eval_data: metrics on held-out videos after training

Under torchrun (DDP) every process takes its own clips (gloo on CPU, nccl on GPU); the effective
batch is batch_size * grad_accum * processes clips.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from rgbd_saliency_ros.evaluation.metrics import SaliencyMetrics
from rgbd_saliency_ros.model.random_weights import write_random_sam2_checkpoint
from rgbd_saliency_ros.model import (
    SamDaq,
    load_sam2_checkpoint,
    load_samdaq_weights,
    save_weights,
)
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.frames import resize_probability
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyConfig, SaliencyRuntime
from rgbd_saliency_ros.runtime.sequence import frame_stamp_s, read_rgb

from .config import TrainConfig, load_config
from .datasets import ClipDataset, DepthReading, Video, describe, find_videos

log = logging.getLogger("training")

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "train_state.pt"
RANDOM_BACKBONE_FILE = "sam2_random_backbone.pt"
LOSS_FIELDS = (
    "iteration",
    "loss",
    "loss_mask",
    "loss_intermediate",
    "lr",
    "grad_norm",
    "elapsed_s",
)
# Consecutive optimizer steps with a non-finite gradient that are skipped before the run stops.
MAX_SKIPPED_STEPS = 5


# ------------------------------------------------------------------------------------------ loss


class ClipLoss(nn.Module):
    """The model and its loss as one module, so that DDP sees the whole training forward."""

    def __init__(self, model: SamDaq, intermediate_weight: float) -> None:
        super().__init__()
        self.model = model
        self.intermediate_weight = intermediate_weight

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, gt: torch.Tensor):
        """rgb (B, T, 3, S, S), depth (B, T, 1, S, S), gt (B, T, S, S) -> (total, mask,
        intermediate) loss scalars."""
        return self.model.clip_loss(rgb, depth, gt, self.intermediate_weight)


def lr_at(cfg: TrainConfig, iteration: int) -> float:
    """Learning rate of the optimizer step ``iteration`` (0-based): linear warm-up, then constant,
    cosine (down to min_lr) or poly over the remaining iterations. A pure function of the
    iteration, so a resumed run needs no scheduler state."""
    if iteration < cfg.warmup_iterations:
        return cfg.lr * (iteration + 1) / cfg.warmup_iterations
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.iterations - cfg.warmup_iterations)
    progress = min(1.0, (iteration - cfg.warmup_iterations) / span)
    if cfg.schedule == "cosine":
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * (1.0 - progress) ** cfg.poly_power


# ---------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the training processes (one, or torchrun's)."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _start_processes(device: str) -> Processes:
    """Joins torchrun's process group when launched by it (WORLD_SIZE > 1); picks the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device is cuda but torch sees no GPU (set device: cpu)")
    if world == 1:
        return Processes(0, 1, torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl")
        dev = torch.device("cuda", local_rank)
    else:
        dist.init_process_group(backend="gloo")
        dev = torch.device("cpu")
    return Processes(dist.get_rank(), dist.get_world_size(), dev)


def _mean_over_processes(values: torch.Tensor, procs: Processes) -> torch.Tensor:
    if procs.world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= procs.world
    return values


def _barrier(procs: Processes) -> None:
    if procs.world > 1:
        dist.barrier()


class _ClipIndices(Sampler):
    """Clip indices of the remaining iterations for this process, in the order they are used.

    Item index = ((iteration * grad_accum + micro_step) * processes + rank) * batch_size + b: every
    clip of the run has its own index, the same however the run is split or resumed.
    """

    def __init__(self, cfg: TrainConfig, procs: Processes, start: int, stop: int) -> None:
        self.cfg, self.procs, self.start, self.stop = cfg, procs, start, stop

    def __iter__(self):
        cfg, procs = self.cfg, self.procs
        for it in range(self.start, self.stop):
            for micro in range(cfg.grad_accum):
                first = ((it * cfg.grad_accum + micro) * procs.world + procs.rank) * cfg.batch_size
                yield from range(first, first + cfg.batch_size)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.cfg.grad_accum * self.cfg.batch_size


def _collate(items: list[dict]) -> dict:
    return {
        "rgb": torch.stack([i["rgb"] for i in items]),  # (B, T, 3, S, S)
        "depth": torch.stack([i["depth"] for i in items]),  # (B, T, 1, S, S)
        "gt": torch.stack([i["gt"] for i in items]),  # (B, T, S, S)
        "videos": [i["video"] for i in items],
    }


# ---------------------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig, sam2_checkpoint: str) -> SamDaq:
    """SAM-DAQ with the SAM2.1 checkpoint's weights (and ``init_weights`` if given); the new
    modules are initialised from ``cfg.seed`` (the caller's random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = SamDaq(cfg.model_config())
    load_sam2_checkpoint(model, sam2_checkpoint)
    if cfg.init_weights:
        load_samdaq_weights(model, cfg.init_weights)
    return model


def _train_mode(model: SamDaq) -> None:
    """Training mode for the trained parts; the frozen ones behave exactly as at inference."""
    model.train()
    for frozen in (model.trunk, model.neck, model.prompt_encoder):
        frozen.eval()


# ---------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_videos(
    model: SamDaq, videos: list[Video], depth: DepthReading | None = None, progress: bool = False
) -> dict:
    """Runs ``model`` over every annotated frame of each video through ``SaliencyRuntime`` (the
    node's and ``predict``'s path), each video one stream from a fresh state, and scores the
    probabilities against the ground truth at its own size. Returns frame-averaged metrics
    (``SaliencyMetrics.results()`` keys) and "frames". The model is left in eval mode.
    """
    runtime = SaliencyRuntime(TorchBackend(model.eval()), SaliencyConfig())
    depth = depth or DepthReading()
    metrics = SaliencyMetrics()
    frames = [(v, f) for v in videos for f in v.frames]
    for n, (video, frame) in enumerate(
        tqdm(frames, desc="evaluate", unit="frame", disable=not progress)
    ):
        pair = FramePair(
            f"video_{videos.index(video)}",
            frame_stamp_s(n),
            read_rgb(frame.rgb),
            depth.read(frame.depth),
            depth_is_metric=False,  # DepthReading gives the model's [0, 1] convention already
        )
        [result] = runtime.run([runtime.prepare(pair)])
        gt = cv2.imread(str(frame.gt), cv2.IMREAD_GRAYSCALE)
        metrics.update(resize_probability(result.model_probability, gt.shape), gt)
    return {**metrics.results(), "frames": len(metrics)}


# ------------------------------------------------------------------------------- resume state


def save_train_state(
    path: Path,
    model: SamDaq,
    optimizer: torch.optim.Optimizer,
    scaler,
    iteration: int,
    cfg: TrainConfig,
    sam2_checkpoint: str,
) -> None:
    """Writes what ``--resume`` needs: tensors and plain values only (``weights_only``
    loadable)."""
    state = {
        "format": "rgbd_saliency_ros.train_state",
        "iteration": iteration,  # optimizer steps done
        "model": {k: v.detach().cpu() for k, v in model.trained_state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "config": cfg.to_dict(),
        "sam2_checkpoint": sam2_checkpoint,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never a half-written state, even if the job is killed while saving


def load_train_state(path: str | os.PathLike) -> dict:
    """Reads a resume state (a ``train_state.pt`` or the run folder holding one), safely."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training state to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "rgbd_saliency_ros.train_state":
        raise ValueError(f"{path}: not a training state written by training.train")
    return state


def _restore(model: SamDaq, optimizer, scaler, state: dict, cfg: TrainConfig, path) -> None:
    saved = TrainConfig.from_dict(state["config"]).model_config()
    if saved != cfg.model_config():
        raise ValueError(
            f"{path}: the state is for {saved}, the config asks for {cfg.model_config()}"
        )
    own, saved_keys = set(model.trained_state_dict()), set(state["model"])
    if saved_keys != own:
        raise ValueError(
            f"{path}: trained parameters differ from this model's "
            f"(missing {sorted(own - saved_keys)[:5]}, unexpected {sorted(saved_keys - own)[:5]})"
        )
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])


# ------------------------------------------------------------------------------------ logging


class _LossLog:
    """loss.csv (kept up to the resumed iteration, then appended) and TensorBoard when
    importable."""

    def __init__(self, out_dir: Path, start: int) -> None:
        self.path = out_dir / "loss.csv"
        rows = []
        if start > 0 and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= start]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=LOSS_FIELDS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            log.info("tensorboard is not installed: losses go to %s only", self.path)

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for key in ("loss", "loss_mask", "loss_intermediate", "lr"):
                self.tensorboard.add_scalar(f"train/{key}", row[key], row["iteration"])

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


# ------------------------------------------------------------------------------------ training


@dataclass
class TrainResult:
    """What a run produced (on the main process; other processes get the same iteration counts)."""

    out_dir: Path
    weights: Path | None  # None when stopped early by stop_after
    sam2_checkpoint: str  # the backbone used: pass it to predict's --sam2-checkpoint
    start_iteration: int
    iterations_done: int
    losses: list[float]  # total loss of each iteration run in this call
    eval: dict | None


def train(
    cfg: TrainConfig,
    resume: str | os.PathLike | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Runs (or resumes) a training; see the module docstring for what is written.

    ``stop_after``: stop once this many iterations are done (saving the resume state, not the
    weights), as a time-limited job would; a later ``resume`` continues to ``cfg.iterations``.
    Torch's CPU thread count is ``cfg.threads`` during the run and the caller's again after it.
    """
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        procs = _start_processes(cfg.device)
        try:
            return _train(cfg, procs, resume, stop_after, progress)
        finally:
            if procs.world > 1:
                dist.destroy_process_group()
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Run:
    """What a training call sets up once and every step works on (this process's share)."""

    cfg: TrainConfig
    procs: Processes
    out: Path
    sam2_checkpoint: str  # the backbone used: pass it to predict's --sam2-checkpoint
    model: SamDaq
    net: nn.Module  # the model and its loss (ClipLoss), wrapped in DDP under torchrun
    trained: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast_dtype: torch.dtype | None  # None: float32
    loader: DataLoader
    start: int  # optimizer steps already done (resumed)
    stop: int  # optimizer steps done when this call returns


def _train(
    cfg: TrainConfig, procs: Processes, resume, stop_after: int | None, progress: bool
) -> TrainResult:
    out = Path(cfg.out_dir)
    if procs.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    state = load_train_state(resume) if resume else None
    run = _setup(cfg, procs, out, state, resume, stop_after)
    losses = _run_iterations(run, progress)
    _barrier(procs)
    weights, eval_results = None, None
    if run.stop == cfg.iterations and procs.is_main:
        weights, eval_results = _finish(run, losses, progress)
    return TrainResult(
        out, weights, run.sam2_checkpoint, run.start, run.stop, losses, eval_results
    )


def _backbone_checkpoint(cfg: TrainConfig, procs: Processes, out: Path, state: dict | None) -> str:
    """The SAM2.1 checkpoint to build on: the resumed run's, Meta's, or (smoke tests) a random one
    written to ``out`` so that predict and resume can load exactly it."""
    if state is not None:
        sam2_checkpoint = state["sam2_checkpoint"]
    elif cfg.sam2_checkpoint:
        sam2_checkpoint = cfg.sam2_checkpoint
    else:
        sam2_checkpoint = str(out / RANDOM_BACKBONE_FILE)
        if procs.is_main:
            write_random_sam2_checkpoint(cfg.model_config(), cfg.seed, Path(sam2_checkpoint))
        _barrier(procs)
    if cfg.sam2_checkpoint is None or Path(sam2_checkpoint).name == RANDOM_BACKBONE_FILE:
        log.warning(
            "sam2_checkpoint is null: the SAM2.1 backbone is RANDOM (seed %d), not Meta's "
            "pretrained one; fit for smoke tests only. It is saved as %s: pass it to predict's "
            "--sam2-checkpoint.",
            cfg.seed,
            sam2_checkpoint,
        )
    return sam2_checkpoint


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``cfg.precision`` on ``device``; None for float32 (and off CUDA)."""
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.precision)
    if dtype is not None and device.type != "cuda":
        log.warning(
            "precision %s applies on CUDA only: training in float32 on %s", cfg.precision, device
        )
        return None
    return dtype


def _setup(
    cfg: TrainConfig, procs: Processes, out: Path, state: dict | None, resume, stop_after
) -> _Run:
    """Model, optimizer, scaler (restored from ``state`` when resuming) and this process's data."""
    sam2_checkpoint = _backbone_checkpoint(cfg, procs, out, state)
    model = build_model(cfg, sam2_checkpoint).to(procs.device)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast_dtype = _autocast_dtype(cfg, procs.device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    start = 0
    if state is not None:
        _restore(model, optimizer, scaler, state, cfg, resume)
        start = int(state["iteration"])
        log.info("resumed from %s at iteration %d", resume, start)
    stop = cfg.iterations if stop_after is None else min(cfg.iterations, stop_after)
    loader = _data_loader(cfg, procs, start, stop)
    if procs.is_main:
        log.info(
            "model %s at %d: %d trained parameters of %d; %d process(es) on %s, %s",
            cfg.backbone,
            cfg.input_size,
            sum(p.numel() for p in trained),
            sum(p.numel() for p in model.parameters()),
            procs.world,
            procs.device,
            cfg.precision if autocast_dtype else "float32",
        )
    _train_mode(model)
    net: nn.Module = ClipLoss(model, cfg.intermediate_weight)
    if procs.world > 1:
        # The IoU and object-score heads of SAM2's decoder are trainable but get no gradient.
        device_ids = [procs.device.index] if procs.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=True
        )
    return _Run(
        cfg=cfg,
        procs=procs,
        out=out,
        sam2_checkpoint=sam2_checkpoint,
        model=model,
        net=net,
        trained=trained,
        optimizer=optimizer,
        scaler=scaler,
        autocast_dtype=autocast_dtype,
        loader=loader,
        start=start,
        stop=stop,
    )


def _data_loader(cfg: TrainConfig, procs: Processes, start: int, stop: int) -> DataLoader:
    """The clips of iterations start..stop that this process trains on, in order."""
    videos = find_videos(cfg.data)
    dataset = ClipDataset(
        videos,
        cfg.clip_frames,
        cfg.input_size,
        cfg.data.depth,
        cfg.clip_sampling,
        cfg.hflip_prob,
        cfg.seed,
    )
    if procs.is_main:
        log.info(
            "data %s: %s; %d usable for %d-frame clips%s",
            cfg.data.root,
            describe(videos),
            len(dataset.videos),
            cfg.clip_frames,
            f" (too short: {dataset.skipped})" if dataset.skipped else "",
        )
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=_ClipIndices(cfg, procs, start, stop),
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        pin_memory=procs.device.type == "cuda",
        persistent_workers=False,
    )


def _run_iterations(run: _Run, progress: bool) -> list[float]:
    """Optimizer steps ``run.start`` to ``run.stop``: each logged to loss.csv, the resume state
    saved every ``save_every`` and at the end. Returns each step's total loss."""
    cfg, procs = run.cfg, run.procs
    loss_log = _LossLog(run.out, run.start) if procs.is_main else None
    bar = tqdm(
        total=run.stop,
        initial=run.start,
        desc="train",
        unit="it",
        disable=not (progress and procs.is_main),
    )
    losses: list[float] = []
    skipped = 0
    batches = iter(run.loader)
    began = time.monotonic()
    try:
        for it in range(run.start, run.stop):
            lr = lr_at(cfg, it)
            parts, grad_norm, skipped = _step(run, it, lr, batches, skipped)
            losses.append(parts[0])
            if loss_log is not None:
                loss_log.write(
                    {
                        "iteration": it + 1,
                        "loss": parts[0],
                        "loss_mask": parts[1],
                        "loss_intermediate": parts[2],
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "elapsed_s": round(time.monotonic() - began, 3),
                    }
                )
            bar.update(1)
            bar.set_postfix(loss=f"{parts[0]:.4f}", lr=f"{lr:.2e}")
            done = it + 1
            if procs.is_main and (done % cfg.save_every == 0 or done == run.stop):
                save_train_state(
                    run.out / STATE_FILE,
                    run.model,
                    run.optimizer,
                    run.scaler,
                    done,
                    cfg,
                    run.sam2_checkpoint,
                )
    finally:
        bar.close()
        if loss_log is not None:
            loss_log.close()
    return losses


def _step(run: _Run, it: int, lr: float, batches, skipped: int) -> tuple[list[float], float, int]:
    """Optimizer step ``it`` (0-based) at learning rate ``lr`` over ``grad_accum`` batches.

    ``skipped``: the steps skipped in a row before this one. Returns the loss parts (total, mask,
    intermediate) averaged over micro-steps and processes, the gradient norm before clipping, and
    the steps skipped in a row after this one.
    """
    cfg, procs = run.cfg, run.procs
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    parts = torch.zeros(3, device=procs.device)
    for micro in range(cfg.grad_accum):
        parts += _micro_step(run, next(batches), last=micro == cfg.grad_accum - 1)
    run.scaler.unscale_(run.optimizer)
    grad_norm = float(nn.utils.clip_grad_norm_(run.trained, cfg.max_grad_norm or math.inf))
    if math.isfinite(grad_norm) or run.scaler.is_enabled():
        run.scaler.step(run.optimizer)  # with float16, the scaler itself skips non-finite steps
        skipped = 0
    else:
        # A rare overflow (e.g. in SAM2's attention backward) must not poison the weights.
        skipped += 1
        log.warning(
            "iteration %d: non-finite gradient norm, step skipped (%d in a row)", it + 1, skipped
        )
        if skipped >= MAX_SKIPPED_STEPS:
            raise FloatingPointError(
                f"{skipped} non-finite gradients in a row at iteration {it + 1}: "
                "lower lr or set max_grad_norm"
            )
    run.scaler.update()
    parts = _mean_over_processes(parts, procs).tolist()
    if not math.isfinite(parts[0]):
        raise FloatingPointError(
            f"loss is {parts[0]} at iteration {it + 1}; lower lr or set max_grad_norm"
        )
    return parts, grad_norm, skipped


def _micro_step(run: _Run, batch: dict, last: bool) -> torch.Tensor:
    """Forward and backward of one batch (``_collate``'s dict), its gradient scaled by
    1 / grad_accum. Returns (3,) total, mask and intermediate loss, detached, / grad_accum."""
    procs, accum = run.procs, run.cfg.grad_accum
    # Gradients are averaged across processes once per step, on the last micro-step.
    sync = run.net.no_sync() if procs.world > 1 and not last else contextlib.nullcontext()
    autocast = (
        torch.autocast("cuda", dtype=run.autocast_dtype)
        if run.autocast_dtype
        else contextlib.nullcontext()
    )
    with sync:
        with autocast:
            total, mask, inter = run.net(
                *(batch[k].to(procs.device, non_blocking=True) for k in ("rgb", "depth", "gt"))
            )
        run.scaler.scale(total / accum).backward()
    return torch.stack([total, mask, inter]).detach() / accum


def _finish(run: _Run, losses: list[float], progress: bool) -> tuple[Path, dict | None]:
    """After the last iteration (main process): scores the held-out videos when ``eval_data`` is
    set (eval.json) and writes the weights with the run's summary. Returns (weights, metrics)."""
    cfg, out = run.cfg, run.out
    summary = {
        "iterations": cfg.iterations,
        "clip_frames": cfg.clip_frames,
        "lr": cfg.lr,
        "schedule": cfg.schedule,
        "effective_batch": cfg.batch_size * cfg.grad_accum * run.procs.world,
        "seed": cfg.seed,
        "data": cfg.data.to_dict(),
        "sam2_checkpoint": cfg.sam2_checkpoint
        or f"random (seed {cfg.seed}), {RANDOM_BACKBONE_FILE}",
        "final_loss": losses[-1] if losses else None,
    }
    eval_results = None
    if cfg.eval_data is not None:
        eval_results = evaluate_videos(
            run.model, find_videos(cfg.eval_data), cfg.eval_data.depth, progress
        )
        (out / "eval.json").write_text(json.dumps(eval_results, indent=2) + "\n")
        log.info(
            "held-out %s: S %.4f, maxF %.4f, MAE %.4f over %d frames",
            cfg.eval_data.root,
            eval_results["Smeasure"],
            eval_results["maxFm"],
            eval_results["MAE"],
            eval_results["frames"],
        )
        summary["eval"] = eval_results
    weights = out / WEIGHTS_FILE
    save_weights(
        run.model,
        weights,
        extra_metadata={
            "depth_conversion": cfg.data.depth.conversion.to_dict(),
            "depth_input": cfg.data.depth.to_dict(),
            "training": summary,
        },
    )
    log.info("wrote %s (load with --sam2-checkpoint %s)", weights, run.sam2_checkpoint)
    return weights, eval_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config", required=True, help="YAML training configuration (training/configs/*.yaml)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, value parsed as YAML; dotted keys reach into data: data.root=/x",
    )
    parser.add_argument(
        "--resume", help="continue from a train_state.pt, or the run folder holding one"
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        help="stop after this many iterations (resume state saved, no weights)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load_config(args.config, args.set)
    except (OSError, ValueError) as e:
        print(f"python -m training.train: error: {e}", file=sys.stderr)
        return 2
    result = train(
        cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.no_progress
    )
    if result.losses:
        log.info(
            "iterations %d..%d: loss %.4f -> %.4f",
            result.start_iteration + 1,
            result.iterations_done,
            result.losses[0],
            result.losses[-1],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
