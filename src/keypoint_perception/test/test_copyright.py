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
"""Every source file carries the copyright and Apache-2.0 license header."""

import glob
import os

import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sources():
    files = glob.glob(os.path.join(PACKAGE_DIR, '**', '*.py'), recursive=True)
    return [f for f in files if '/build/' not in f and '.egg' not in f]


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    try:  # the real ament linter where a ROS 2 install provides it
        from ament_copyright.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=[PACKAGE_DIR]) == 0, 'Found errors'
        return
    sources = _sources()
    assert sources
    missing = []
    for path in sources:
        with open(path, encoding='utf-8') as f:
            head = f.read(2000)
        if 'Copyright' not in head or 'Apache License, Version 2.0' not in head:
            missing.append(os.path.relpath(path, PACKAGE_DIR))
    assert not missing, f'files without copyright/license header: {missing}'
