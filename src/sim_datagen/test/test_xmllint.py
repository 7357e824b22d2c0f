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
"""package.xml is well formed and a valid format-3 manifest."""

import os

import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    try:  # the real ament linter where a ROS 2 install provides it
        from ament_xmllint.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=[PACKAGE_DIR]) == 0, 'Found errors'
        return
    from catkin_pkg.package import parse_package
    pkg = parse_package(os.path.join(PACKAGE_DIR, 'package.xml'))
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.name == os.path.basename(PACKAGE_DIR)
    assert pkg.licenses and pkg.maintainers and pkg.description.strip()
    assert pkg.get_build_type() == 'ament_python'
