"""The node's image outputs of one stream: the mask and what goes with it.

    <stream's output namespace>/mask          sensor_msgs/Image mono8, 0 or 255
    <stream's output namespace>/probability   sensor_msgs/Image 32FC1 in [0, 1]
    <stream's output namespace>/overlay       sensor_msgs/Image rgb8, the mask over the color frame
    <stream's output namespace>/camera_info   sensor_msgs/CameraInfo, the color one re-stamped

all with the color frame's header. Each is built only when someone subscribes to it; a stream with
no subscriber to any of its outputs (these and its ``ObjectOutputs``) is not computed at all (the
node asks ``listening`` before it steps the model).

The publishers take Humble's standard QoS overrides (``qos_overrides.<topic>.publisher.*``
parameters, e.g. in a parameters file), over the ``output_qos.*`` parameters' profile.
"""

from __future__ import annotations

import copy

import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image

from .conversions import image_message, overlay_rgb


class ImageOutputs:
    """One stream's image publishers (``topics``: its ``StreamTopics``)."""

    def __init__(self, node: Node, topics, qos) -> None:
        overrides = QoSOverridingOptions.with_default_policies()
        self._node = node

        def publisher(kind, topic):
            return node.create_publisher(kind, topic, qos, qos_overriding_options=overrides)

        self.mask = publisher(Image, topics.mask)
        self.probability = publisher(Image, topics.probability)
        self.overlay = publisher(Image, topics.overlay)
        self.camera_info = publisher(CameraInfo, topics.camera_info_out)
        self._all = (self.mask, self.probability, self.overlay, self.camera_info)

    def listening(self) -> bool:
        """Whether anyone subscribes to one of these outputs now."""
        return any(p.get_subscription_count() for p in self._all)

    def publish(
        self,
        header,
        mask: np.ndarray,
        probability: np.ndarray,
        rgb: np.ndarray,
        info: CameraInfo | None,
    ) -> None:
        """Publishes one frame's outputs that someone listens to. mask (H, W) uint8 0/255,
        probability (H, W) float32, rgb (H, W, 3) uint8, info: the checked color CameraInfo of
        this image size (None: no camera_info output)."""
        if self.mask.get_subscription_count():
            self.mask.publish(image_message(mask, "mono8", header))
        if self.probability.get_subscription_count():
            self.probability.publish(image_message(probability, "32FC1", header))
        if self.overlay.get_subscription_count():
            self.overlay.publish(image_message(overlay_rgb(rgb, mask), "rgb8", header))
        if info is not None and self.camera_info.get_subscription_count():
            restamped = copy.copy(info)  # shallow: only the header is replaced
            restamped.header = header
            self.camera_info.publish(restamped)

    def destroy(self) -> None:
        """Destroys the publishers (lifecycle cleanup)."""
        for publisher in self._all:
            self._node.destroy_publisher(publisher)
