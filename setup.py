"""Packaging for colcon (ament_python) and for pip (`pip install --no-deps -e .`, see the
Makefile).

On a robot the ROS install provides rclpy and the message packages, and the pip-only dependencies
(torch, sam2, ...) come from requirements/; so install_requires lists only what every use needs.
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "rgbd_saliency_ros"

setup(
    name=package_name,
    version="0.1.0",  # keep equal to package.xml and rgbd_saliency_ros.__version__
    packages=find_packages(include=[package_name, package_name + ".*"]),  # not test/ nor training/
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["numpy", "pyyaml"],
    extras_require={"test": ["pytest"]},  # tells `colcon test` to run pytest (on test/)
    zip_safe=True,
    maintainer="rgbd_saliency_ros maintainers",
    maintainer_email="maintainers@users.noreply.b-seed-1c6cb61e.example",
    description="Salient-object masks from RGB-D camera streams with SAM-DAQ, as a ROS 2 node.",
    license="MIT",
    entry_points={
        "console_scripts": [
            "rgbd-saliency = rgbd_saliency_ros.cli:main",
            "saliency_node = rgbd_saliency_ros.ros.node:main",
        ],
    },
)
