# Development and CI on a machine without ROS: everything runs from .venv/ (see README.md).
#   make setup   create .venv/ (ROS 2 Kilted wheels) and .venv-jazzy/ (Jazzy wheels), each with the
#                pinned requirements, colcon, ros2cli and launch, and this package (redone only when
#                an input changes); PyTorch 2.5.1's sources into .cache/ (once)
#   make test    the linters (ruff, ruff.toml; vermin: nothing newer than Python 3.10), the tests
#                in .venv/, then the ROS-facing ones again in .venv-jazzy/
#                (PYTEST_ARGS passes flags to pytest: PYTEST_ARGS='-m "not slow"' is the quick loop,
#                without parity and export at 1024, the 20 Ctrl-C starts, the demo, the replays and
#                the smoke training; see README "Development"); make test-jazzy: the latter alone
#   make demo    synthetic RGB-D video, small weights, a bag, the node, a live replay: report in out/demo/report/
#   make clean   remove outputs and build leftovers; `make distclean` also removes the venvs

VENV    := .venv
JAZZY   := .venv-jazzy
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
# The tests that talk to rclpy, DDS or the ROS tools: run on both distributions' wheels.
ROS_TESTS   = $(wildcard test/test_ros_*.py test/test_launch*.py test/test_replay_live.py)
# Kilted's pass repeats Ctrl-C 20 times (20 node starts, the suite's time); on Jazzy every launch
# test still ends with a Ctrl-C checked for exit status 0 and no traceback.
JAZZY_DESELECT := -k "not ctrl_c_while_frames_flow"

# The oldest PyTorch the package supports, 2.5 (JetPack 6.1's and 6.2's; see requirements/
# torch-cpu.txt): test/test_torch25_api.py checks the package against its Python sources (the
# version is repeated there). Fetched once: PyPI's aarch64 CPU wheel (92 MB, the smallest), whose
# .py and .pyi files are kept (38 MB) and the wheel deleted. Nothing is installed or imported.
TORCH_OLDEST     := 2.5.1
TORCH_OLDEST_DIR := .cache/torch-$(TORCH_OLDEST)

.PHONY: setup check-python lint test test-jazzy demo clean distclean

setup: $(VENV)/.setup-done $(JAZZY)/.setup-done $(TORCH_OLDEST_DIR)/.done

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

$(JAZZY)/.setup-done: $(INPUTS) requirements/ros-jazzy.txt | check-python
	$(call make_venv,$(JAZZY),requirements/ros-jazzy.txt)

# vermin: what a robot installs must run on Ubuntu 22.04's Python 3.10 (Humble, JetPack 6), so
# any syntax, stdlib module, function or keyword argument newer than 3.10 fails. Annotations are
# read as if evaluated, the stricter reading (those under `from __future__ import annotations`
# still pass: builtin generics and `X | None` are 3.10's).
lint: $(VENV)/.setup-done
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin -q --violations -t=3.10- --eval-annotations --no-tips \
		rgbd_saliency_ros launch setup.py

test: setup lint
	$(PY) -m pytest -q test $(PYTEST_ARGS)
	@echo "== the ROS-facing tests again, on ROS 2 Jazzy's wheels ($(JAZZY))"
	$(JAZZY)/bin/python -m pytest -q $(ROS_TESTS) $(JAZZY_DESELECT) $(PYTEST_ARGS)

# The Jazzy pass alone.
test-jazzy: $(JAZZY)/.setup-done
	$(JAZZY)/bin/python -m pytest -q $(ROS_TESTS) $(JAZZY_DESELECT) $(PYTEST_ARGS)

# Prints each step; reuses out/demo/weights when present (delete it, or DEMO_ARGS=--retrain, to train again).
demo: $(VENV)/.setup-done
	$(PY) -m rgbd_saliency_ros.evaluation.demo $(DEMO_ARGS)

clean:
	rm -rf out build install log *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -path ./$(JAZZY) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(JAZZY) $(TORCH_OLDEST_DIR)
