# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
"""flake8 over the package, as ROS 2 core packages run it."""

import os

from ament_flake8.main import main_with_errors
import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[
        '--config', os.path.join(PACKAGE_DIR, 'setup.cfg'), PACKAGE_DIR])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
