# Copyright 2026 The keypoint_perception authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# Entry points of the workspace (PyPI-wheel ROS 2 environment, see tools/setup_env.sh).
#   make setup   create .venv, install requirements, build the compat overlay and src/
#   make build   like setup, but always run the colcon build of src/
#   make test    setup, then pytest over test/ and the packages' test folders
#   make test-distro  the core and node tests again with the numpy 1.26 and OpenCV 4.6
#                of apt ROS 2 users (requirements-distro.txt, installed into .venv/distro)
#   make demo    setup, then run keypoints-demo $(ARGS)
#   make clean   remove build/, install/ and log/ (keeps .venv and the compat overlay)
#   make distclean  also remove .venv

SHELL := /bin/bash
ARGS ?=
PYTEST_ARGS ?=
# Test folders that exist (packages may not have one yet).
TEST_DIRS := $(wildcard test src/keypoint_perception/test src/sim_datagen/test)
# The distribution's numpy/OpenCV, put in front of .venv's on PYTHONPATH.
DISTRO_SITE := .venv/distro
# Node tests over DDS that exercise numpy/OpenCV in the nodes and the compat overlay.
DISTRO_NODE_TESTS := $(wildcard test/test_ros_compat.py test/test_stereo_keypoint_node.py \
  test/test_node_parameters.py test/test_node_faults.py)

.PHONY: all setup build test test-distro demo clean distclean

all: setup

setup:
	bash tools/setup_env.sh

build:
	bash tools/setup_env.sh --build

# One pytest process per test folder, as `colcon test` does per package: the
# packages' lint tests share file names (test_flake8.py, ...) and some folders
# import their own conftest, which rules out a single pytest run over all of
# them. A folder without tests (pytest's exit code 5) is not a failure.
test: setup
	@bash -c 'source tools/env.sh || exit 1; rc=0; \
	  for d in $(TEST_DIRS); do \
	    echo "== pytest $$d"; \
	    python -m pytest -q $(PYTEST_ARGS) "$$d" || { s=$$?; [ $$s -eq 5 ] || rc=$$s; }; \
	  done; exit $$rc'

# Apt ROS 2 users get numpy 1.26 and OpenCV 4.x from their distribution (Ubuntu
# 24.04 for Jazzy); .venv has numpy 2 and OpenCV 5. The core tests (without the
# linters and test_model.py, which only exercises torch and trains for minutes)
# and the node tests run again with requirements-distro.txt first on the path;
# the versions are checked before any test runs.
test-distro: setup
	@bash -c 'set -o pipefail; source tools/env.sh || exit 1; \
	  if ! cmp -s requirements-distro.txt $(DISTRO_SITE)/requirements-distro.txt; then \
	    echo "== installing requirements-distro.txt into $(DISTRO_SITE)"; rm -rf $(DISTRO_SITE); \
	    python -m pip install --disable-pip-version-check -q --target $(DISTRO_SITE) \
	      -r requirements-distro.txt 2>&1 | { grep -v -e "^WARNING: Location" \
	      -e "dependency resolver does not currently" -e "requires numpy>=2" || true; } \
	      || exit 1; \
	    cp requirements-distro.txt $(DISTRO_SITE)/; \
	  fi; \
	  export PYTHONPATH="$$PWD/$(DISTRO_SITE)$${PYTHONPATH:+:$$PYTHONPATH}"; \
	  python -c "import sys, cv2, numpy; print(\"== test-distro: numpy\", numpy.__version__, \
	    \"OpenCV\", cv2.__version__); sys.exit(not (numpy.__version__.startswith(\"1.26\") \
	    and cv2.__version__.startswith(\"4.\")))" || { echo "wrong numpy/OpenCV" >&2; exit 1; }; \
	  rc=0; \
	  echo "== pytest src/keypoint_perception/test (numpy 1.26, OpenCV 4)"; \
	  python -m pytest -q $(PYTEST_ARGS) -m "not linter" \
	    --ignore=src/keypoint_perception/test/test_model.py src/keypoint_perception/test || rc=$$?; \
	  echo "== pytest $(DISTRO_NODE_TESTS) (numpy 1.26, OpenCV 4)"; \
	  python -m pytest -q $(PYTEST_ARGS) $(DISTRO_NODE_TESTS) || rc=$$?; \
	  exit $$rc'

demo: setup
	.venv/bin/keypoints-demo $(ARGS)

clean:
	rm -rf build install log .stamps/workspace

distclean: clean
	rm -rf .venv .stamps
