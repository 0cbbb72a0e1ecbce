# Development and CI on a machine without ROS: everything runs from .venv/ (see README.md).
#   make setup   create .venv/ and install the pinned requirements and this package (once)
#   make test    run the tests (PYTEST_ARGS='-m "not slow"' to pass flags to pytest)
#   make demo    synthetic RGB-D video, small weights, a bag, the node, a live replay: report in out/demo/report/
#   make clean   remove outputs and build leftovers; `make distclean` also removes .venv/

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.setup-done
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup test demo clean distclean

setup: $(STAMP)

# Order matters: torch before sam2, whose build imports it; the package itself last, without deps.
$(STAMP): requirements/*.txt setup.py setup.cfg
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements/build.txt
	$(PIP) install -q -r requirements/torch-cpu.txt -r requirements/base.txt -r requirements/ros-pypi.txt
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-deps --no-build-isolation -r requirements/sam2.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(PY) -m pytest -q test $(PYTEST_ARGS)

# Prints each step; reuses out/demo/weights when present (delete it, or DEMO_ARGS=--retrain, to train again).
demo: setup
	$(PY) -m rgbd_saliency_ros.evaluation.demo $(DEMO_ARGS)

clean:
	rm -rf out build install log *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
