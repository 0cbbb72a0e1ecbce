"""The one QoS builder of the node, the live replay and the benchmarks, by the names their
parameters and options take.

Here rather than in ``ros/`` because ``evaluation/`` may not import ``ros/`` (DESIGN.md "Layers"),
and ``runtime/`` is below both. rclpy is imported when a profile is built, never at import, so
``runtime/`` still imports without ROS and the command line's parser can take ``RELIABILITIES``.

    qos = keep_last_qos("best_effort", 5)  # rclpy.qos.QoSProfile: keep last 5, volatile
"""

from __future__ import annotations

# The reliability names of the parameters (input_qos.reliability, output_qos.reliability), the
# live replay's options and the command line's flags.
RELIABILITIES = ("reliable", "best_effort")


def keep_last_qos(reliability: str, depth: int):
    """A keep-last, volatile ``rclpy.qos.QoSProfile`` of ``depth`` messages.

    ``reliability``: one of ``RELIABILITIES``; ValueError otherwise (naming the choices)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    policies = {
        "reliable": ReliabilityPolicy.RELIABLE,
        "best_effort": ReliabilityPolicy.BEST_EFFORT,
    }
    if reliability not in policies:
        raise ValueError(f"reliability {reliability!r} is not one of {', '.join(RELIABILITIES)}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=policies[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )
