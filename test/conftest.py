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
"""Fixtures shared by the integration tests."""

import os

import pytest


@pytest.fixture(scope='session', autouse=True)
def onnx_cache(tmp_path_factory):
    """Keep ONNX exports of the tests' checkpoints out of the user's cache.

    On the CPU the default backend (ONNX Runtime) exports a checkpoint that
    has no ONNX file into ``$XDG_CACHE_HOME`` on first use; the nodes and
    CLIs the tests start as subprocesses inherit this environment.
    """
    previous = os.environ.get('XDG_CACHE_HOME')
    os.environ['XDG_CACHE_HOME'] = str(tmp_path_factory.mktemp('xdg_cache'))
    yield os.environ['XDG_CACHE_HOME']
    if previous is None:
        del os.environ['XDG_CACHE_HOME']
    else:
        os.environ['XDG_CACHE_HOME'] = previous
