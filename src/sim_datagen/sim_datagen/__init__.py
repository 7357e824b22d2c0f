# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
"""Domain-randomized synthetic stereo keypoint data with PyBullet."""

__version__ = '0.1.0'
