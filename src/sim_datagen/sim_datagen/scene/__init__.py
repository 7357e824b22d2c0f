# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
"""PyBullet scene: stereo rig, board, occluders, backgrounds, rendering."""
