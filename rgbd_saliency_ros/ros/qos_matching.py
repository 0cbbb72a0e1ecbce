"""Input subscriptions whose reliability follows the publishers of their topic.

A reliable subscription does not match a best-effort publisher, and a best-effort subscription to a
reliable publisher of large images loses most of them over UDP (fragments dropped, no repair; see
README, "QoS"). So, as rosbag2 and ``ros2 topic echo`` do, the subscription asks the graph what the
publishers offer: reliable when every publisher is reliable, best effort when any is not. A timer
looks again, so a publisher that appears later (or a driver restarted with other settings) is
followed. A fixed reliability (the ``input_qos.reliability`` parameter) turns this off.

    sub = AdaptiveSubscription(node, Image, "camera/color/image_raw", callback, qos, adaptive=True)
    node.create_timer(1.0, sub.follow_publishers)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble: the same class under its older module name
    from rclpy.qos_event import SubscriptionEventCallbacks


def matching_reliability(offered: Iterable[ReliabilityPolicy]) -> ReliabilityPolicy | None:
    """The reliability that receives from every publisher offering ``offered``; None when there is
    none. Reliable only when all are reliable: it gets every message from reliable publishers but
    matches no best-effort one."""
    offered = list(offered)
    if not offered:
        return None
    if all(policy == ReliabilityPolicy.RELIABLE for policy in offered):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


class AdaptiveSubscription:
    """One subscription, re-created with another reliability when the publishers call for it.

    Args:
        node: the node that owns the subscription.
        msg_type, topic, callback: as for ``Node.create_subscription`` (topic may be relative).
        qos: history, depth and durability of the subscription; its reliability is the one used
            while no publisher is known, and the only one when ``adaptive`` is false.
        adaptive: follow the publishers' reliability.
        on_message_lost: called with rclpy's message-lost status and this object when DDS
            reports lost messages.
    """

    def __init__(
        self,
        node: Node,
        msg_type,
        topic: str,
        callback: Callable,
        qos: QoSProfile,
        adaptive: bool,
        on_message_lost: Callable | None = None,
    ) -> None:
        self._node, self._msg_type, self._callback = node, msg_type, callback
        self._qos, self._adaptive, self._on_message_lost = qos, adaptive, on_message_lost
        self.subscription = self._subscribe(topic, qos)
        self.topic = self.subscription.topic_name  # fully resolved, remapped
        self.follow_publishers()

    @property
    def reliability(self) -> ReliabilityPolicy:
        """The reliability of the current subscription."""
        return self._qos.reliability

    def follow_publishers(self) -> bool:
        """Re-creates the subscription if the publishers now call for another reliability;
        True when it did. Call from the executor (a timer), never from another thread."""
        if not self._adaptive:
            return False
        infos = self._node.get_publishers_info_by_topic(self.topic)
        wanted = matching_reliability(info.qos_profile.reliability for info in infos)
        if wanted is None or wanted == self._qos.reliability:
            return False
        qos = QoSProfile(
            history=self._qos.history,
            depth=self._qos.depth,
            reliability=wanted,
            durability=self._qos.durability,
        )
        self._node.destroy_subscription(self.subscription)
        self.subscription = self._subscribe(self.topic, qos)
        self._qos = qos
        self._node.get_logger().info(
            f"{self.topic}: subscribed {wanted.name.lower()} to match its {len(infos)} "
            "publisher(s)"
        )
        return True

    def _subscribe(self, topic: str, qos: QoSProfile):
        # When following, an incompatible publisher is expected for up to one check period: say so
        # quietly instead of rclpy's default warning.
        events = SubscriptionEventCallbacks(
            incompatible_qos=self._on_incompatible if self._adaptive else None,
            message_lost=self._lost if self._on_message_lost is not None else None,
        )
        return self._node.create_subscription(
            self._msg_type, topic, self._callback, qos, event_callbacks=events
        )

    def _lost(self, status) -> None:
        self._on_message_lost(status, self)

    def _on_incompatible(self, _event) -> None:
        self._node.get_logger().debug(
            f"{self.topic}: a publisher offers other QoS: following it shortly"
        )
