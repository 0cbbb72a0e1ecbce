# Development and CI on a machine without ROS: everything runs from .venv/ (see README.md).
#   make setup   create .venv/ and install the pinned requirements and this package (once)
#   make test    run the tests (PYTEST_ARGS='-m "not slow"' to pass flags to pytest)
#   make demo    predict masks for the parity fixture's three frames into out/demo/
#   make clean   remove outputs and build leftovers; `make distclean` also removes .venv/

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.setup-done
SHARED  ?= ../shared
FIXTURE := $(SHARED)/fixtures/samdaq_parity
DEMO_IN := out/demo_input
PYTEST_ARGS ?=

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

# The fixture folder mixes rgb_*.png and depth_*.png: link them into one folder per modality.
demo: setup
	test -d $(FIXTURE) || { echo "$(FIXTURE) not found: the demo needs the project's shared data"; exit 1; }
	mkdir -p $(DEMO_IN)/rgb $(DEMO_IN)/depth
	ln -sf $(abspath $(FIXTURE))/rgb_*.png $(DEMO_IN)/rgb/
	ln -sf $(abspath $(FIXTURE))/depth_*.png $(DEMO_IN)/depth/
	$(VENV)/bin/rgbd-saliency predict \
	  --sam2-checkpoint $(FIXTURE)/sam2.1_hiera_tiny_random.pt \
	  --weights $(FIXTURE)/samdaq_tiny_random.pt \
	  --model sam2.1_hiera_t --input-size 1024 \
	  --rgb-dir $(DEMO_IN)/rgb --depth-dir $(DEMO_IN)/depth --out-dir out/demo

clean:
	rm -rf out build install log *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
