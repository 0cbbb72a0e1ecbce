"""Benchmarks measure real work: every part of the step is timed and the parts fit in the total."""

import pytest
from conftest import seeded

from rgbd_saliency_ros.benchmarks.step import PARTS, bench_step
from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import SamDaqConfig


def test_bench_step_times_every_part():
    timings = bench_step(SamDaqConfig(input_size=64), batch=2, repeats=2, warmup=1)
    assert len(timings.totals_s) == 2 and timings.median_s > 0
    for part in PARTS:
        assert timings.part_median_s(part) > 0, part
    assert sum(timings.part_median_s(p) for p in PARTS) <= timings.median_s * 1.05
    report = timings.report()
    assert "batch 2" in report and all(p in report for p in PARTS)


def test_seeded_benchmarks_leave_the_callers_random_state():
    """bench-temporal draws its model and frames from seed 0 without reseeding the caller."""
    import torch

    from rgbd_saliency_ros.benchmarks.temporal import bench_temporal

    with seeded(7):
        expected = torch.rand(3)
    with seeded(7):
        row = bench_temporal(SamDaqConfig(input_size=64), frames=2, probe=(1, 2), window=1)
        assert torch.equal(torch.rand(3), expected)  # as if nothing had been drawn
    assert row["frames"] == 2


def test_bench_step_command_prints_breakdown(capsys):
    assert cli_main(["bench-step", "--input-size", "64", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "median step" in out and "trunk" in out and "memory_encoder" in out


def test_bench_streams_measures_batched_and_sequential(capsys):
    assert (
        cli_main(["bench-streams", "--input-size", "64", "--streams", "1", "2", "--repeats", "1"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert "input 64" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["1", "2"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)


def test_bench_suite_writes_json_and_markdown(tmp_path):
    import json

    from rgbd_saliency_ros.benchmarks.suite import SuiteSettings, run_suite, write_reports

    tiny = SuiteSettings("sam2.1_hiera_t", 64, 64, "sam2.1_hiera_t", 64, 2, 64, 12)
    results = run_suite(tiny, "cpu", node=False, progress=lambda _: None)
    json_path, md_path = write_reports(results, tmp_path)
    loaded = json.loads(json_path.read_text())
    assert {r["adapter"] for r in loaded["training"]["rows"]} == {"parallel", "serial", "lora"}
    assert all(r["peak_bytes"] > 0 and r["step_s"] > 0 for r in loaded["training"]["rows"])
    serial = next(r for r in loaded["training"]["rows"] if r["adapter"] == "serial")
    assert serial["peak_vs_serial"] == 1.0
    assert [r["temporal"] for r in loaded["temporal"]["rows"]] == ["qtm", "memory_bank"]
    assert set(loaded["temporal"]["rows"][0]["step_at_frame_s"]) == {"1", "10", "12"}
    assert loaded["temporal"]["rows"][0]["state_floats"] == 8 * 64
    text = md_path.read_text()
    assert "| serial |" in text and "| memory_bank |" in text and "Node overhead" in text


def test_every_command_is_wired(repo_root):
    """Every command the README shows exists and runs something (the README is the independent
    list)."""
    import re

    from rgbd_saliency_ros.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    documented = set(
        re.findall(r"rgbd-saliency ([a-z][a-z-]*[a-z])", (repo_root / "README.md").read_text())
    )
    assert {
        "predict",
        "eval",
        "export",
        "replay",
        "make-bag",
        "bench",
        "bench-memory",
    } <= documented
    assert documented <= set(commands)
    for name, parser in commands.items():
        assert callable(parser.get_default("run")), name


def test_soak_figures_leave_the_warm_up_out():
    """The RSS rise of the first tenth (allocator pools) is warm-up; a steady rise after it and a
    latency drift are what the soak reports."""
    from rgbd_saliency_ros.benchmarks.node import NodeBench
    from rgbd_saliency_ros.benchmarks.soak import SoakResult

    mib = 2**20
    samples = [(0, 100 * mib), (50, 400 * mib)]
    samples += [(n, 400 * mib + n * mib // 100) for n in range(100, 1001, 100)]
    result = SoakResult(NodeBench(1000, 20.0, "auto", 64), samples)
    result.bench.received_latency_ms = [50.0] * 500 + [70.0] * 500
    s = result.summary()
    assert s["rss start MiB"] == pytest.approx(401.0) and s["rss end MiB"] == pytest.approx(410.0)
    assert s["rss growth %"] == pytest.approx(100 * 9 / 401)
    assert s["rss slope MiB/1000 masks"] == pytest.approx(10.0)
    assert (s["latency early p50 ms"], s["latency late p50 ms"]) == (50.0, 70.0)
    assert s["latency drift ms"] == 20.0 and "growth +2.24 %" in result.report()


def test_soak_tenths_attribute_a_drift_to_its_part(tmp_path):
    """A run whose model step slows from 100 to 150 ms half way: the per-tenth table puts the
    drift in the model column, the other parts stay, and the output is received - node latency."""
    from rgbd_saliency_ros.benchmarks.node import NodeBench
    from rgbd_saliency_ros.benchmarks.soak import SoakResult

    result = SoakResult(NodeBench(4000, 20.0, "auto", 64))
    for n in range(0, 3001, 50):  # the node's windowed p50s, sampled as it publishes
        model = 100.0 if n - 150 < 1500 else 150.0
        p50s = {"model_ms_p50": model, "input_ms_p50": 10.0, "wait_ms_p50": 20.0}
        p50s.update(latency_ms_p50=model + 10 + 20 + 5, t_s=n / 10, cpu_s=n / 20, lost=n / 100)
        result.node_p50s.append((n, p50s))
        result.samples.append((n, 500 * 2**20))
    result.bench.received_latency_ms = [137.0] * 1500 + [187.0] * 1500
    tenths = result.tenths()
    assert [t["model"] for t in tenths] == [100.0] * 5 + [150.0] * 5
    for t in tenths:
        assert (t["input"], t["wait"], t["node rest"], t["rss MiB"]) == (10.0, 20.0, 5.0, 500.0)
        assert t["output"] == pytest.approx(2.0)
        assert t["node CPU %"] == pytest.approx(50.0)  # half a core: cpu_s grows at t_s / 2
    # lost grows by 0.5 a sample: five sample gaps in a tenth, six in the last (it ends on 3000)
    assert [t["lost"] for t in tenths] == pytest.approx([2.5] * 9 + [3.0])
    assert "model" in result.report() and "keep-last 5" in result.report()
    result.plot(tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 10_000


def test_ping_pong_turns_without_a_jump():
    from rgbd_saliency_ros.benchmarks.memory import ping_pong

    assert ping_pong(3, 9) == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert ping_pong(1, 3) == [0, 0, 0]


def test_bench_memory_command_reports_norms_and_scores(tmp_path, capsys):
    import json

    import cv2
    import numpy as np

    from rgbd_saliency_ros.model.random_weights import write_random_weights

    rng = np.random.default_rng(0)
    for sub in ("rgb", "depth", "gt"):
        (tmp_path / sub).mkdir()
    for t in range(3):  # a dark (near) square moving right over a far background
        depth = np.full((48, 48), 200, np.uint8)
        gt = np.zeros((48, 48), np.uint8)
        depth[14:34, 8 + 4 * t : 28 + 4 * t] = 20
        gt[depth == 20] = 255
        cv2.imwrite(
            str(tmp_path / "rgb" / f"{t}.png"), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        )
        cv2.imwrite(str(tmp_path / "depth" / f"{t}.png"), depth)
        cv2.imwrite(str(tmp_path / "gt" / f"{t}.png"), gt)
    sam2, weights = write_random_weights(tmp_path, 64)
    out = tmp_path / "memory.json"
    assert (
        cli_main(
            [
                "bench-memory",
                "--sam2-checkpoint",
                str(sam2),
                "--weights",
                str(weights),
                "--rgb-dir",
                str(tmp_path / "rgb"),
                "--depth-dir",
                str(tmp_path / "depth"),
                "--gt-dir",
                str(tmp_path / "gt"),
                "--steps",
                "11",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert "S-measure over the frames" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["steps"] == 11 and result["frames"] == 3 and result["non_finite_states"] == 0
    assert (
        0
        < result["query_norm_at_10"]
        <= result["query_norm_max"]
        <= result["query_norm_bound"] * 1.0001
    )
    assert all(0.0 <= result[k] <= 1.0 for k in ("S_first_pass", "S_last_pass", "S_fresh_state"))
