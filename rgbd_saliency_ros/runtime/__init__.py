"""Runtime layer: frames in, masks out, no ROS. Preprocessing, per-stream memory, backends,
export."""
