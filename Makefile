# Development and CI on a machine without ROS: everything runs from .venv/ (see README.md).
#   make setup   create .venv/ (ROS 2 Kilted wheels, the pinned requirements, colcon, ros2cli and
#                launch, this package) and a simulated Jazzy robot: .robot-system/ (Jazzy wheels and
#                Ubuntu 24.04's numpy 1.26 and OpenCV 4.6) with .venv-robot/ layered on it the
#                README's way (requirements/robot.txt); redone only when an input changes
#                (and PyTorch 2.5.1's sources into .cache/, once)
#   make test    the linters (ruff; vermin: nothing newer than Python 3.10), the tests in .venv/,
#                then the robot pass: the ROS-facing, runtime and replay tests in .venv-robot/
#                (PYTEST_ARGS passes flags to pytest: PYTEST_ARGS='-m "not slow"' is the quick loop,
#                without parity and export at 1024, the 20 Ctrl-C starts, the demo, the replays and
#                the smoke training; see README "Development"); make test-robot: the latter alone
#   make demo    synthetic RGB-D video, small weights, a bag, the node, a live replay: report in out/demo/report/
#   make clean   remove outputs and build leftovers; `make distclean` also removes the venvs

VENV    := .venv
ROBOT_SYSTEM := .robot-system
ROBOT   := .venv-robot
PY      := $(VENV)/bin/python
PYTHON  ?= python3
PYTEST_ARGS ?=
DEMO_ARGS ?=

# launch, launch_ros, ros2cli: every source distribution there except launch_testing's and
# launch_pytest's (see requirements/ros-tooling.txt). Absent folder: setup goes on without them.
ROS_PYTHON := ../shared/ros2-python
ROS_TOOLS  := $(filter-out %/launch_testing-3.4.3.tar.gz %/launch_testing_ros-0.26.6.tar.gz \
                %/launch_pytest-3.4.3.tar.gz,$(wildcard $(ROS_PYTHON)/*.tar.gz))
INPUTS     := requirements/build.txt requirements/torch-cpu.txt requirements/base.txt \
              requirements/sam2.txt requirements/ros-tooling.txt requirements/test.txt setup.py \
              setup.cfg $(ROS_TOOLS)
# The robot pass: the tests that talk to rclpy, DDS or the ROS tools, and those of the runtime and
# replay, whose numpy and OpenCV calls are where numpy 1 and 2 differ (see README "Development").
ROS_TESTS   = $(wildcard test/test_ros_*.py test/test_launch*.py test/test_replay_live.py)
KILTED_TESTS = $(filter-out test/test_launch.py,$(wildcard test/test_*.py)) \
               test/test_launch.py::test_ctrl_c_while_frames_flow_exits_0_without_traceback_every_time
ROBOT_TESTS = $(ROS_TESTS) test/test_robot_install.py test/test_runtime.py test/test_frames.py \
              test/test_depth.py test/test_depth_source.py test/test_geometry.py test/test_pairing.py \
              test/test_compressed.py test/test_input_health.py test/test_replay.py test/test_bag.py \
              test/test_metrics.py
# Kilted's pass repeats Ctrl-C 20 times (20 node starts, the suite's time); in the robot pass every
# launch test still ends with a Ctrl-C checked for exit status 0 and no traceback.
ROBOT_DESELECT := -k "not ctrl_c_while_frames_flow"

# The oldest PyTorch the package supports, 2.5 (JetPack 6.1's and 6.2's; see requirements/
# torch-cpu.txt): test/test_torch25_api.py checks the package against its Python sources (the
# version is repeated there). Fetched once: PyPI's aarch64 CPU wheel (92 MB, the smallest), whose
# .py and .pyi files are kept (38 MB) and the wheel deleted. Nothing is installed or imported.
TORCH_OLDEST     := 2.5.1
TORCH_OLDEST_DIR := .cache/torch-$(TORCH_OLDEST)

.PHONY: setup check-python lint test test-kilted test-robot demo clean distclean

setup:
	$(MAKE) --no-print-directory -j3 $(VENV)/.setup-done $(ROBOT)/.setup-done $(TORCH_OLDEST_DIR)/.done

# $(1): the venv folder; $(2): its ROS 2 wheels. Order matters: torch before sam2, whose build
# imports it; the package itself and the ROS tools without deps, after what they need.
define make_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q -r requirements/build.txt
	$(1)/bin/python -m pip install -q -r requirements/torch-cpu.txt -r requirements/base.txt \
		-r $(2) -r requirements/ros-tooling.txt -r requirements/test.txt
	SAM2_BUILD_CUDA=0 $(1)/bin/python -m pip install -q --no-deps --no-build-isolation -r requirements/sam2.txt
	$(1)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(if $(ROS_TOOLS),$(1)/bin/python -m pip install -q --no-deps --no-build-isolation $(ROS_TOOLS),
		@echo "note: $(ROS_PYTHON) not found: launch, launch_ros and ros2cli are not installed" \
		"in $(1) (ros2 launch, ros2 run, ros2 param); the tests that need them skip")
	touch $(1)/.setup-done
endef

# The venv's pip: a fresh machine's python3 may have none.
$(TORCH_OLDEST_DIR)/.done: | $(VENV)/.setup-done
	rm -rf $(TORCH_OLDEST_DIR)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 \
		--platform manylinux2014_aarch64 -d $(TORCH_OLDEST_DIR) torch==$(TORCH_OLDEST)
	$(PY) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], \
		[n for n in z.namelist() if n.startswith("torch/") and n.endswith((".py", ".pyi"))])' \
		$(TORCH_OLDEST_DIR)/torch-$(TORCH_OLDEST)-*.whl $(TORCH_OLDEST_DIR)
	rm $(TORCH_OLDEST_DIR)/torch-$(TORCH_OLDEST)-*.whl
	touch $@

# numpy 2.3 and the ROS 2 wheels need Python 3.11 or newer: say so before pip fails on it.
check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make setup needs Python 3.11 or newer as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1))."; \
		echo "Install one and run e.g. 'make setup PYTHON=python3.11'."; exit 1; }

$(VENV)/.setup-done: $(INPUTS) requirements/ros-pypi.txt | check-python
	$(call make_venv,$(VENV),requirements/ros-pypi.txt)

# The simulated robot. .robot-system/ plays the robot's system Python: Ubuntu 24.04's numpy,
# OpenCV, SciPy... (robot-system-jazzy.txt), ROS 2 Jazzy's rclpy and messages, colcon and the ROS
# tools. .venv-robot/ is the user's venv over it, made as the README's robot recipe says: it sees the
# system's packages (a .pth file stands in for --system-site-packages, which would see this
# machine's own Python instead), its pip gets the system's pins (requirements/system_pins.py) and
# installs robot.txt, torch, sam2 and robot-no-deps.txt; nothing may shadow the system's numpy.
$(ROBOT_SYSTEM)/.setup-done: requirements/build.txt requirements/robot-system-jazzy.txt \
		requirements/ros-jazzy.txt requirements/ros-tooling.txt $(ROS_TOOLS) | check-python
	test -x $(ROBOT_SYSTEM)/bin/python || $(PYTHON) -m venv $(ROBOT_SYSTEM)
	$(ROBOT_SYSTEM)/bin/python -m pip install -q -r requirements/build.txt
	$(ROBOT_SYSTEM)/bin/python -m pip install -q -r requirements/robot-system-jazzy.txt
	$(ROBOT_SYSTEM)/bin/python -m pip install -q -c requirements/robot-system-jazzy.txt \
		-r requirements/ros-jazzy.txt -r requirements/ros-tooling.txt
	$(if $(ROS_TOOLS),$(ROBOT_SYSTEM)/bin/python -m pip install -q --no-deps --no-build-isolation $(ROS_TOOLS),)
	{ echo '# What /opt/ros/jazzy/setup.bash does on a robot: ROS libraries, tools and index on the paths'; \
	  echo 'export PATH="$(CURDIR)/$(ROBOT_SYSTEM)/bin:$$PATH"'; \
	  echo 'export AMENT_PREFIX_PATH="$(CURDIR)/$(ROBOT_SYSTEM)$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH}"'; \
	  echo 'export LD_LIBRARY_PATH="$(CURDIR)/$(ROBOT_SYSTEM)/lib:'"$$(ls -d $(CURDIR)/$(ROBOT_SYSTEM)/lib/python3*/site-packages/ros_*.libs | tr '\n' ':')"'$${LD_LIBRARY_PATH:-}"'; \
	  echo 'export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1  # the wheels re-exec Python to set the above'; \
	} > $(ROBOT_SYSTEM)/setup.bash
	touch $@

$(ROBOT)/.setup-done: $(ROBOT_SYSTEM)/.setup-done $(INPUTS) requirements/robot.txt \
		requirements/robot-no-deps.txt requirements/system_pins.py
	test -x $(ROBOT)/bin/python || $(PYTHON) -m venv $(ROBOT)
	$(ROBOT)/bin/python -c 'import site, sys; open(site.getsitepackages()[0] + "/robot_system.pth", "w").write("import site; site.addsitedir(%r)\n" % sys.argv[1])' \
		"$$($(ROBOT_SYSTEM)/bin/python -c 'import site; print(site.getsitepackages()[0])')"
	$(ROBOT)/bin/python -m pip install -q -r requirements/build.txt
	$(ROBOT)/bin/python requirements/system_pins.py > $(ROBOT)/system-pins.txt
	$(ROBOT)/bin/python -m pip install -q -c $(ROBOT)/system-pins.txt -r requirements/torch-cpu.txt \
		-r requirements/robot.txt -r requirements/test.txt
	$(ROBOT)/bin/python -m pip install -q --no-deps -c $(ROBOT)/system-pins.txt -r requirements/robot-no-deps.txt
	SAM2_BUILD_CUDA=0 $(ROBOT)/bin/python -m pip install -q --no-deps --no-build-isolation -r requirements/sam2.txt
	$(ROBOT)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# vermin: what a robot installs must run on Ubuntu 22.04's Python 3.10 (Humble, JetPack 6), so
# any syntax, stdlib module, function or keyword argument newer than 3.10 fails. Annotations are
# read as if evaluated, the stricter reading (those under `from __future__ import annotations`
# still pass: builtin generics and `X | None` are 3.10's).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin -q --violations -t=3.10- --eval-annotations --no-tips \
		rgbd_saliency_ros launch setup.py requirements/system_pins.py

# The two passes run side by side, in ROS domain ranges of their own (2 cores: much of the ROS
# tests' time is waiting on DDS and on node processes starting); -O prints each pass's output
# when it ends. The venvs are made side by side too.
test: lint
	$(MAKE) --no-print-directory -j2 -O test-kilted test-robot

# The Kilted pass alone: every test but the launch ones, which the robot pass runs the user's way
# with the same launch and ros2cli sources, except the 20 Ctrl-C starts, which stay on Kilted's rclpy.
test-kilted: $(VENV)/.setup-done
	@echo "== the Kilted pass ($(VENV))"
	RGBD_SALIENCY_PRIVATE_DOMAINS=1-100 $(PY) -m pytest -q $(KILTED_TESTS) $(PYTEST_ARGS)

# The robot pass alone: a simulated Jazzy robot (numpy 1.26, OpenCV 4.6) and the README's venv.
# RGBD_TEST_ROBOT_SYSTEM: where the system's colcon and ros2 are, so that the launch tests build
# and launch with them, the venv on PYTHONPATH, as a robot does. One torch thread: the models here
# are small, and the Kilted pass beside it has the two cores' worth.
test-robot: $(ROBOT)/.setup-done
	@echo "== the robot pass ($(ROBOT) over $(ROBOT_SYSTEM))"
	. $(ROBOT_SYSTEM)/setup.bash && RGBD_TEST_ROBOT_SYSTEM=$(CURDIR)/$(ROBOT_SYSTEM) \
		RGBD_SALIENCY_PRIVATE_DOMAINS=101-200 OMP_NUM_THREADS=1 \
		$(ROBOT)/bin/python -m pytest -q $(ROBOT_TESTS) $(ROBOT_DESELECT) $(PYTEST_ARGS)

# Prints each step; reuses out/demo/weights when present (delete it, or DEMO_ARGS=--retrain, to train again).
demo: $(VENV)/.setup-done
	$(PY) -m rgbd_saliency_ros.evaluation.demo $(DEMO_ARGS)

clean:
	rm -rf out build install log *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -path ./$(ROBOT) -prune -o -path ./$(ROBOT_SYSTEM) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(ROBOT) $(ROBOT_SYSTEM) .venv-jazzy $(TORCH_OLDEST_DIR)
