"""The saliency node as a process of its own, as the demo and the live tests run it.

The node is started by its module name (no import of ``ros/``: evaluation stays below it), its
environment passed to the process only, never set in this one.

    env = private_ros_env(domain)
    with running(node_command(sam2, weights, {"diagnostics_period_s": 0.5}), env=env) as node:
        ...  # stopped as Ctrl-C stops it when the block ends
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

NODE_MODULE = "rgbd_saliency_ros.ros.node"


def ros_args(
    sam2_checkpoint: str | os.PathLike,
    weights: str | os.PathLike,
    params: Mapping[str, object] | None = None,
    log_level: str | None = None,
) -> list[str]:
    """``--ros-args`` for the node: its two weights files, more parameters (name -> value, e.g.
    ``{"input_qos.reliability": "reliable"}``) and a log level."""
    args = ["--ros-args", "-p", f"sam2_checkpoint:={sam2_checkpoint}", "-p", f"weights:={weights}"]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={value}"]
    return args + (["--log-level", log_level] if log_level else [])


def node_command(
    sam2_checkpoint: str | os.PathLike,
    weights: str | os.PathLike,
    params: Mapping[str, object] | None = None,
    log_level: str | None = None,
) -> list[str]:
    """The command line that starts the node with this Python (see ``ros_args``)."""
    return [
        sys.executable,
        "-m",
        NODE_MODULE,
        *ros_args(sam2_checkpoint, weights, params, log_level),
    ]


# "FIRST-LAST": the ROS domain ids private runs (the benchmarks, the demo, the tests) choose from.
# Two sessions side by side (make test's two passes) each get a range of their own, where the pid
# alone could give both one domain. Ids above 101 can meet Linux's ephemeral ports; 200 is the
# highest the ports of a domain leave room for beside a few nodes.
PRIVATE_DOMAINS_ENV = "RGBD_SALIENCY_PRIVATE_DOMAINS"


def private_domain_id(salt: int = 0) -> int:
    """A ROS domain id for a private run of this process: from its pid and ``salt`` (callers in
    one process use different salts), within ``RGBD_SALIENCY_PRIVATE_DOMAINS`` (default 1-200)."""
    text = os.environ.get(PRIVATE_DOMAINS_ENV, "1-200")
    try:
        first, last = (int(n) for n in text.split("-"))
        if not 0 <= first <= last <= 232:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{PRIVATE_DOMAINS_ENV}={text!r}: expected FIRST-LAST within 0-232"
        ) from None
    return first + (os.getpid() + salt) % (last - first + 1)


def private_ros_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment by default) on ROS domain ``domain_id``, discovering
    on this machine only: for a child process, so that nothing else on the network answers it."""
    return dict(
        os.environ if base is None else base,
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
    )


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Ends a node or publisher process as a user's Ctrl-C does (SIGINT); killed after
    ``timeout_s``. Nothing happens to a process that has ended already."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(command: list[str], **popen_args) -> Iterator[subprocess.Popen]:
    """``command`` as a process (``subprocess.Popen(command, **popen_args)``) for the ``with``
    block, stopped by ``stop_process`` when it ends, however it ends."""
    process = subprocess.Popen(command, **popen_args)
    try:
        yield process
    finally:
        stop_process(process)
