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
"""Docstring style (PEP 257 with Google-style sections) over the package."""

import os

from ament_pep257.main import main
import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: ament's default ignore list plus the rules that contradict Google-style
#: "Args:/Returns:" sections (D213, D406, D407, D413).
IGNORE = ['D100', 'D101', 'D102', 'D103', 'D104', 'D105', 'D106', 'D107', 'D203', 'D212',
          'D213', 'D404', 'D406', 'D407', 'D413']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=['--ignore', *IGNORE, '--', PACKAGE_DIR])
    assert rc == 0, 'Found code style errors / warnings'
