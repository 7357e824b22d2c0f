# Copyright 2026 The keypoint_perception authors
# Licensed under the Apache License, Version 2.0
"""ROS-independent core: networks, heat maps, geometry, object classes."""
