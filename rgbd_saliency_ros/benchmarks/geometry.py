"""Per-frame cost of the node's 3D outputs at 640x480: geometry, registration, messages.

    rgbd-saliency bench-geometry        # TUM RGB-D's real frame from ../shared (or random)
    rgbd-saliency bench-geometry --repeats 200

What the node's worker adds to a frame when someone subscribes to the 3D outputs: the object's
points, centroid and box (``runtime.geometry.object_geometry``) for masks of three sizes, the
messages built from them (PointCloud2 with the default voxel, centroid, pose, size, markers), and,
for a depth camera that is not registered to color, the registration of a 320x240 depth frame.
Times are the median and 95th percentile over ``repeats`` runs in this process; on a shared
machine they vary with its load (say so when quoting them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from .node import tum_frames

TUM_K = (535.4, 0.0, 320.1, 0.0, 539.2, 247.6, 0.0, 0.0, 1.0)  # TUM freiburg3, registered depth


def _times_ms(run: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    run()  # caches (pixel rays) filled outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    # The fastest run is the closest to the cost on an idle machine (others' load only adds).
    return statistics.median(times), float(np.percentile(times, 95)), min(times)


def bench_geometry(repeats: int = 50) -> dict[str, tuple[float, float, float]]:
    """{what: (median, p95, fastest) ms} for the 3D outputs of one 640x480 frame."""
    import cv2
    from std_msgs.msg import Header

    from ..ros.object_messages import ObjectMessageOptions, object_messages
    from ..runtime.depth import decode_ros_depth
    from ..runtime.geometry import CameraModel, object_geometry, register_depth

    rgb, depth_mm = tum_frames()
    depth_m = decode_ros_depth(depth_mm, "16UC1")
    camera = CameraModel.from_camera_info(640, 480, TUM_K)
    header = Header(frame_id="camera_color_optical_frame")
    results: dict[str, tuple[float, float, float]] = {}
    for name, (w, h) in (
        ("small object (1/16 of the frame)", (160, 120)),
        ("medium object (1/4)", (320, 240)),
        ("large object (1/2)", (452, 340)),
    ):
        mask = np.zeros((480, 640), np.uint8)
        cv2.ellipse(mask, (320, 260), (w // 2, h // 2), 0, 0, 360, 255, -1)
        found = object_geometry(mask, depth_m, camera)
        results[f"geometry, {name}"] = _times_ms(
            lambda: object_geometry(mask, depth_m, camera), repeats
        )
        options = ObjectMessageOptions()
        results[f"messages, {name}"] = _times_ms(
            lambda: object_messages(found, rgb, header, options), repeats
        )
    small = cv2.resize(depth_m, (320, 240), interpolation=cv2.INTER_NEAREST)
    depth_camera = CameraModel.from_camera_info(
        320, 240, [TUM_K[0] / 2, 0, TUM_K[2] / 2, 0, TUM_K[4] / 2, TUM_K[5] / 2, 0, 0, 1]
    )
    moved = np.eye(4)
    moved[0, 3] = -0.025
    results["registration, 320x240 depth into 640x480"] = _times_ms(
        lambda: register_depth(small, depth_camera, camera, moved), repeats
    )
    return results


def report(results: dict[str, tuple[float, float, float]], repeats: int) -> str:
    """The results as lines of text: median, 95th percentile and fastest run, milliseconds."""
    lines = [f"3D outputs per 640x480 frame, {repeats} runs each (median / p95 / fastest, ms)"]
    width = max(map(len, results))
    lines += [
        f"  {name:<{width}}  {median:7.2f}  {p95:7.2f}  {fastest:7.2f}"
        for name, (median, p95, fastest) in results.items()
    ]
    return "\n".join(lines)
