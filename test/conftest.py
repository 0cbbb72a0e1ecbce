"""Shared test helpers: the project's shared data lives at ../shared, beside the repository root.

def test_parity(shared_path):
    expected = shared_path("fixtures", "samdaq_parity", "expected.npz")
"""

import contextlib
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def find_shared(*parts: str) -> Path:
    """Path of ../shared/<parts...>; skips the calling test when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        shown = "/".join(("..", "shared") + parts)
        pytest.skip(
            f"{shown} not found: tests that need the project's shared data run only where it is "
            "present (CI has it)"
        )
    return path


def tum_rgbd():
    """TUM RGB-D's real 640x480 frame from ../shared (the calling test skips without it):
    (480, 640, 3) uint8 RGB, (480, 640) uint16 millimetres as 16UC1 carries them (0 invalid)
    and (480, 640) float32 metres (NaN invalid)."""
    import cv2

    from rgbd_saliency_ros.runtime.depth import encode_ros_depth, read_tum_depth

    folder = find_shared("data", "rgbd_encodings")
    rgb = cv2.cvtColor(cv2.imread(str(folder / "TUM_color.png")), cv2.COLOR_BGR2RGB)
    metres = read_tum_depth(folder / "TUM_depth.png")
    return rgb, encode_ros_depth(metres, "16UC1"), metres


def retagged_weights(good: Path, out: Path, change) -> None:
    """Writes ``out``: the project weights file ``good``'s tensors with its metadata (a dict of
    JSON strings) changed in place by ``change(metadata)``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(good), framework="pt") as f:
        metadata = dict(f.metadata())
    change(metadata)
    save_file(load_file(str(good)), str(out), metadata=metadata)


def package_files() -> list[Path]:
    """The Python files a robot installs: the package and the launch files."""
    return sorted((REPO_ROOT / "rgbd_saliency_ros").rglob("*.py")) + sorted(
        (REPO_ROOT / "launch").glob("*.py")
    )


def wait_for(get, what: str, timeout_s: float = 60.0):
    """Polls ``get()`` until it returns something true and returns that; fails the test with
    ``what`` after ``timeout_s`` (generous by default: the CPU is shared)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = get()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def send_until_received(send, received: dict, what: str, timeout_s: float = 15.0) -> float:
    """Calls ``send()`` (which sends a frame and returns its stamp, seconds) until ``received``
    (stamp rounded to 6 decimals -> message, filled by a subscription) has that stamp within
    ``timeout_s``, at most 10 times (DDS matching may lose the very first messages); returns it."""
    for _ in range(10):
        stamp = send()
        try:
            wait_for(lambda: received.get(round(stamp, 6)), what, timeout_s=timeout_s)
            return stamp
        except AssertionError:
            continue
    raise AssertionError(f"nothing after 10 tries: {what}")


def small_ssd(folder: Path) -> Path:
    """The SSD set's 3 real frames at a quarter of their size (small messages), as PNG files in
    ``folder``/rgb, depth and gt; skips the calling test without the shared data."""
    import cv2

    data = find_shared("data", "ssd_rgbd_sod")
    for sub, interpolation in (
        ("rgb", cv2.INTER_AREA),
        ("depth", cv2.INTER_AREA),
        ("gt", cv2.INTER_NEAREST),
    ):
        (folder / sub).mkdir(parents=True)
        for path in sorted((data / sub).iterdir()):
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            small = cv2.resize(image, (240, 270), interpolation=interpolation)
            cv2.imwrite(str(folder / sub / f"{path.stem}.png"), small)
    return folder


@contextlib.contextmanager
def seeded(seed: int):
    """torch draws from ``seed`` inside the block; outside it the global random state is as it
    was (a test seeding it would change what every later test draws)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def private_domain(offset: int) -> int:
    """A ROS domain id of this test process's own: another test file uses another ``offset``, a
    parallel run another pid, so none of them sees the others' nodes; within the range
    RGBD_SALIENCY_PRIVATE_DOMAINS gives (`make test` runs its two passes side by side, each in a
    range of its own)."""
    from rgbd_saliency_ros.evaluation.node_process import private_domain_id

    return private_domain_id(offset)


@contextlib.contextmanager
def spinning(context, *nodes, executor=None):
    """Spins ``nodes`` on a thread of their own until exit; then shuts the executor down and
    destroys the nodes. By default one thread, as rclpy.spin runs a node: the node re-creates
    subscriptions from its own callbacks (QoS following, lifecycle), which a multi-threaded
    executor can race (InvalidHandle)."""
    import threading

    from rclpy.executors import SingleThreadedExecutor

    executor = executor or SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        yield executor
    finally:
        executor.shutdown(timeout_sec=5)
        for node in nodes:
            node.destroy_node()


def node_parameters(sam2_checkpoint, weights, **values) -> list:
    """rclpy Parameters of a SaliencyNode under test: its weights first, reliable input (as
    camera drivers publish), then ``values`` by name, "." written "__"
    (``depth__max_depth_m=6.0``)."""
    from rclpy.parameter import Parameter

    named = {
        "sam2_checkpoint": str(sam2_checkpoint),
        "weights": str(weights),
        "input_qos.reliability": "reliable",
        **{name.replace("__", "."): value for name, value in values.items()},
    }
    return [Parameter(name, value=value) for name, value in named.items()]


@contextlib.contextmanager
def private_ros_context(domain: int):
    """An rclpy context of this process on ``domain``, discovering only this machine's
    participants, shut down on exit. rclpy.init reads the discovery range from the environment:
    it is set while the context is open and restored afterwards."""
    import rclpy

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        try:
            yield context
        finally:
            rclpy.try_shutdown(context=context)


@pytest.fixture
def repo_root() -> Path:
    """The repository root (where setup.py and package.xml are)."""
    return REPO_ROOT


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder; skips the test when it is absent."""
    return find_shared()


@pytest.fixture
def shared_path():
    """The function find_shared(*parts): a path under ../shared, or a skip when it is absent."""
    return find_shared


def unpacked_fixture(tmp_path_factory, fixture: str, packed: str) -> Path:
    """``../shared/fixtures/<fixture>/<packed>`` (an .xz file) decompressed into a temporary
    folder; the calling test skips without the shared data. Module fixtures call it once."""
    import lzma
    import shutil

    source = find_shared("fixtures", fixture, packed)
    path = tmp_path_factory.mktemp(fixture) / packed.removesuffix(".xz")
    with lzma.open(source) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 2**24)
    return path


@pytest.fixture(scope="module")
def depth_anything_vits(tmp_path_factory) -> Path:
    """The Depth Anything V2 parity fixture's random ViT-S weights in the official format (a
    float16 state_dict), decompressed once per module."""
    return unpacked_fixture(
        tmp_path_factory, "depth_anything_v2_parity", "depth_anything_v2_vits_random.pth.xz"
    )


@pytest.fixture(scope="module")
def random_weights_64(tmp_path_factory) -> tuple[str, str]:
    """(SAM2.1 checkpoint, SAM-DAQ weights) paths, random values at input 64, once per module."""
    from rgbd_saliency_ros.model.random_weights import write_random_weights

    sam2, weights = write_random_weights(tmp_path_factory.mktemp("weights"), 64)
    return str(sam2), str(weights)


@pytest.fixture(scope="module")
def random_backend_64(random_weights_64):
    """A torch backend loaded from ``random_weights_64`` by the loader every command uses."""
    from rgbd_saliency_ros.runtime.backends import create_backend

    sam2, weights = random_weights_64
    return create_backend("torch", sam2_checkpoint=sam2, weights=weights)
