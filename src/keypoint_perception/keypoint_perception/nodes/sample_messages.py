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
"""Simulator stream messages -> plain values: the reading side of sim_datagen's streaming.

A ``sim_stream_node`` (package sim_datagen) publishes every sample as two
``sensor_msgs/Image``, two ``sensor_msgs/CameraInfo`` and one
``keypoint_msgs/SampleLabels`` with one stamp, its Dirichlet parameters as
``keypoint_msgs/SamplerState`` and takes ``keypoint_msgs/SamplerFeedback``.
This module turns those messages into the labels dict of the on-disk sample
format and builds the feedback message, for the trainer's
:class:`~keypoint_perception.training.stream_dataset.StreamDataset`.  It lives
in keypoint_perception (not sim_datagen) because the trainer must not import
sim_datagen (test_dependencies); sim_datagen's ``ros_messages`` imports it
for the writing side's round trips.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from geometry_msgs.msg import Pose
from keypoint_msgs.msg import (SampleLabels, SamplerFeedback, SamplerState,
                               SceneVariableCounts)
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from ..core.rotations import matrix_from_quaternion
from .conversions import camera_model

#: encodings :func:`image_to_array` understands, with their channel count
_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


def matrix_from_pose(pose: Pose) -> np.ndarray:
    """(4, 4) homogeneous transform of a geometry_msgs/Pose."""
    o = pose.orientation
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion([o.x, o.y, o.z, o.w])
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def image_to_array(msg: Image) -> np.ndarray:
    """Copy an 8-bit rgb8/bgr8/mono8/rgba8/bgra8 image to an (H, W, 3) uint8 RGB array.

    Raises:
        ValueError: other encodings or a data size that does not match.
    """
    ch = _ENCODINGS.get(msg.encoding)
    if ch is None:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}')
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if step < w * ch or buf.size < step * h:
        raise ValueError(f'image {w}x{h} {msg.encoding}: step {step}, {buf.size} bytes')
    a = buf[:step * h].reshape(h, step)[:, :w * ch].reshape(h, w, ch)
    if msg.encoding == 'mono8':
        a = np.repeat(a, 3, axis=2)
    elif msg.encoding.startswith('bgr'):
        a = a[:, :, 2::-1]
    else:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def camera_info_dict(msg: CameraInfo) -> dict:
    """Convert a CameraInfo to the labels-format dict (inverse of sim_datagen's camera_info_msg).

    Read by :func:`.conversions.camera_model`.

    Raises:
        CalibrationError: a calibration the camera model refuses.
    """
    camera = camera_model(msg)
    return {'frame_id': camera.frame_id, 'width': camera.width, 'height': camera.height,
            'distortion_model': camera.distortion_model, 'D': camera.D.tolist(),
            'K': camera.K.ravel().tolist(), 'R': camera.R.ravel().tolist(),
            'P': camera.P.ravel().tolist()}


def msg_to_labels(msg: SampleLabels) -> dict:
    """Labels dict in the on-disk JSON format of a SampleLabels message.

    Keys: ``object_class``, ``keypoint_names``, ``keypoints_2d`` {left,
    right}: (J, 2) px lists, ``visibility`` {left, right}: (J,) ints 0/1/2,
    ``keypoints_3d`` (J, 3) m, ``object_pose`` (4, 4), ``baseline`` (m),
    ``variables`` {name: {value, bin, num_bins}}, ``seed``, ``index``,
    ``key``.  ``camera_info`` is added by the caller (separate topics).
    """
    out = {'object_class': msg.left.class_name,
           'keypoint_names': [k.name for k in msg.left.keypoints],
           'keypoints_2d': {}, 'visibility': {}}
    for view in ('left', 'right'):
        obj = getattr(msg, view)
        out['keypoints_2d'][view] = [[k.x, k.y] for k in obj.keypoints]
        out['visibility'][view] = [int(v) for v in getattr(msg, f'{view}_visibility')]
    out['keypoints_3d'] = [[k.position.x, k.position.y, k.position.z]
                           for k in msg.keypoints_3d.keypoints]
    out['object_pose'] = matrix_from_pose(msg.keypoints_3d.pose).tolist()
    out['baseline'] = float(msg.baseline)
    out['variables'] = {v.name: {'value': float(v.value), 'bin': int(v.bin),
                                 'num_bins': int(v.num_bins)} for v in msg.variables}
    out['seed'], out['index'], out['key'] = int(msg.seed), int(msg.index), msg.sample_key
    return out


def feedback_msg(counts: Mapping[str, Sequence[float]], source: str = '') -> SamplerFeedback:
    """Build a SamplerFeedback message of ``{variable name: counts per bin}``."""
    return SamplerFeedback(source=source, variables=[
        SceneVariableCounts(name=str(n), counts=[float(c) for c in np.ravel(v)])
        for n, v in counts.items()])


def sampler_state_dict(msg: SamplerState) -> dict:
    """Convert a SamplerState message to a dict like ``SceneSampler.state_dict()``.

    ``{'variables': {name: {lo, hi, bins, categorical, theta0, theta}},
    'seed', 'num_updates', 'last_feedback_source', 'next_index', 'stamp'}``
    (stamp in seconds); the result can be passed to
    ``SceneSampler.load_state_dict``.
    """
    return {'variables': {v.name: {'name': v.name, 'lo': v.lo, 'hi': v.hi,
                                   'bins': len(v.alpha), 'categorical': bool(v.categorical),
                                   'theta0': [float(a) for a in v.alpha_prior],
                                   'theta': [float(a) for a in v.alpha]}
                          for v in msg.variables},
            'seed': int(msg.seed), 'num_updates': int(msg.num_updates),
            'last_feedback_source': str(msg.last_feedback_source),
            'next_index': int(msg.next_index),
            'stamp': msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec}
