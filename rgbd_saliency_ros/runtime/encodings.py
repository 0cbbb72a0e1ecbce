"""The sensor_msgs/Image encodings the package reads and writes: one table of their pixel layout.

No ROS and no cv2: the decoders (``images``, ``frames``, ``depth``, ``compressed``) and the
command line (``make-bag --depth-encoding``) take their encodings and channel counts from here,
so a new encoding is one row of ``ENCODINGS`` and, if it is color or depth, one entry below.

    dtype, channels = ENCODINGS["bgra8"]  # (np.uint8, 4)
    "32FC1" in DEPTH_ENCODINGS            # REP 118: 16UC1 millimetres, 32FC1 metres
"""

from __future__ import annotations

import numpy as np

# encoding -> (numpy dtype of one channel, channels per pixel)
ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}

# What a color input may be (frames.color_to_rgb converts each to RGB); the masks go out as mono8
# and the probabilities as 32FC1, also rows of ENCODINGS.
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
# REP 118's depth: 16UC1 millimetres (0 invalid), 32FC1 metres (NaN, inf, 0 invalid).
DEPTH_ENCODINGS = ("16UC1", "32FC1")
