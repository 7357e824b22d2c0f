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
#   make demo    setup, then run keypoints-demo $(ARGS)
#   make clean   remove build/, install/ and log/ (keeps .venv and the compat overlay)
#   make distclean  also remove .venv

SHELL := /bin/bash
ARGS ?=
PYTEST_ARGS ?=
# Test folders that exist (packages may not have one yet).
TEST_DIRS := $(wildcard test src/keypoint_perception/test src/sim_datagen/test)

.PHONY: all setup build test demo clean distclean

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

demo: setup
	.venv/bin/keypoints-demo $(ARGS)

clean:
	rm -rf build install log .stamps/workspace

distclean: clean
	rm -rf .venv .stamps
