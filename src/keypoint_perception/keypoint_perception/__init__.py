# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
"""Stereo keypoint perception: networks, geometry and ROS 2 nodes."""
