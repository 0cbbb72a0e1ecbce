"""The node's depth-estimate output of one stream (``depth_source`` estimated or fill):

    <stream's output namespace>/depth_estimate   sensor_msgs/Image 32FC1

the depth estimator's relative inverse depth at the color frame's size, with the color frame's
header: larger is nearer, never negative, in the network's own units (not metres, not [0, 1]),
its scale and shift changing from frame to frame (README, "Depth Anything V2"). For people and
tools to look at what the model was given; the 3D outputs never use it. Published only while
someone subscribes; a subscriber alone makes its stream computed (as for ``ImageOutputs``).
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

from .conversions import image_message


class DepthEstimateOutput:
    """One stream's ``depth_estimate`` publisher (``topic``: ``StreamTopics.depth_estimate``)."""

    def __init__(self, node: Node, topic: str, qos) -> None:
        self._node = node
        self.publisher = node.create_publisher(
            Image, topic, qos, qos_overriding_options=QoSOverridingOptions.with_default_policies()
        )

    def listening(self) -> bool:
        """Whether anyone subscribes now."""
        return self.publisher.get_subscription_count() > 0

    def publish(self, header, estimate: np.ndarray) -> None:
        """Publishes one frame's estimate if someone listens: estimate (H, W) float32 relative
        inverse depth at the color frame's size; ``header`` the color frame's."""
        if self.listening():
            pixels = np.asarray(estimate, np.float32)
            self.publisher.publish(image_message(pixels, "32FC1", header))

    def destroy(self) -> None:
        """Destroys the publisher (lifecycle cleanup)."""
        self._node.destroy_publisher(self.publisher)
