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
"""Conversions between sim_datagen samples and ROS 2 messages (both directions).

Used by the streaming node (:mod:`sim_datagen.nodes.stream_node`, labels
dict -> messages) and the trainer-side
:class:`~sim_datagen.stream_dataset.StreamDataset` (messages -> the labels
dict of the on-disk format, see :mod:`sim_datagen.writer`).  Imports rclpy
message packages; the offline tools (cli, generator, writer, coco)
never import this module.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence

from geometry_msgs.msg import Point, Pose
from keypoint_msgs.msg import (Keypoint2D, Keypoint3D, ObjectKeypoints2D, ObjectKeypoints3D,
                               SampleLabels, SamplerFeedback, SamplerState, SceneVariable,
                               SceneVariableCounts, SceneVariableDirichlet)
from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.rotations import matrix_from_quaternion
from keypoint_perception.nodes.conversions import camera_info_msg as model_camera_info_msg
from keypoint_perception.nodes.conversions import camera_model, pose_msg
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

VISIBLE = SampleLabels.VISIBILITY_VISIBLE

#: encodings :func:`image_to_array` understands, with their channel count
_ENCODINGS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


# -- geometry ------------------------------------------------------------------------

def matrix_from_pose(pose: Pose) -> np.ndarray:
    """(4, 4) homogeneous transform of a geometry_msgs/Pose."""
    o = pose.orientation
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion([o.x, o.y, o.z, o.w])
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


# -- images and camera infos ---------------------------------------------------------

def image_to_array(msg: Image) -> np.ndarray:
    """Copy an 8-bit ``rgb8``/``bgr8``/``mono8``/``rgba8``/``bgra8`` image to (H, W, 3) RGB uint8.

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


def camera_info_msg(ci: Mapping, stamp) -> CameraInfo:
    """sensor_msgs/CameraInfo of a labels ``camera_info[view]`` dict.

    ``ci`` has ``frame_id``, ``width``, ``height``, ``distortion_model``,
    ``D`` (5,), ``K`` (9,) / (3, 3), ``R`` and ``P`` (12,) / (3, 4); pixels.
    The message is made by the one CameraInfo converter,
    :func:`keypoint_perception.nodes.conversions.camera_info_msg`.

    Raises:
        CalibrationError: a calibration the camera model refuses.
    """
    camera = CameraModel(width=ci['width'], height=ci['height'], K=ci['K'],
                         D=ci.get('D', [0.0] * 5),
                         distortion_model=ci.get('distortion_model', 'plumb_bob'),
                         R=ci.get('R', np.eye(3)), P=ci['P'], frame_id=ci.get('frame_id', ''))
    return model_camera_info_msg(camera, stamp)


def camera_info_dict(msg: CameraInfo) -> dict:
    """Convert a CameraInfo to the labels-format dict (inverse of :func:`camera_info_msg`).

    Read by :func:`keypoint_perception.nodes.conversions.camera_model`.

    Raises:
        CalibrationError: a calibration the camera model refuses.
    """
    camera = camera_model(msg)
    return {'frame_id': camera.frame_id, 'width': camera.width, 'height': camera.height,
            'distortion_model': camera.distortion_model, 'D': camera.D.tolist(),
            'K': camera.K.ravel().tolist(), 'R': camera.R.ravel().tolist(),
            'P': camera.P.ravel().tolist()}


# -- labels --------------------------------------------------------------------------

def _object_2d(class_name: str, names: Sequence[str], uv, vis) -> ObjectKeypoints2D:
    kps = [Keypoint2D(name=str(n), x=float(p[0]), y=float(p[1]), confidence=1.0,
                      valid=int(v) == VISIBLE) for n, p, v in zip(names, uv, vis)]
    return ObjectKeypoints2D(class_name=class_name, instance_id='0', keypoints=kps)


def labels_to_msg(labels: Mapping, sampler, stamp, frame_id: str) -> SampleLabels:
    """Build the SampleLabels message of a generator labels dict.

    Args:
        labels: ``sample['labels']`` of :meth:`SampleGenerator.generate`.
        sampler: the :class:`~keypoint_perception.core.scene_sampler.SceneSampler` (gives
            each variable's number of bins).
        stamp: builtin_interfaces/Time, the stamp of the sample's images.
        frame_id: left optical frame.
    """
    names = list(labels['keypoint_names'])
    cls = str(labels.get('object_class', ''))
    msg = SampleLabels()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.seed, msg.index = int(labels['seed']), int(labels['index'])
    msg.sample_key = f'{msg.index:09d}'
    for view in ('left', 'right'):
        vis = [int(v) for v in labels['visibility'][view]]
        setattr(msg, view, _object_2d(cls, names, labels['keypoints_2d'][view], vis))
        setattr(msg, f'{view}_visibility', vis)
    kp3 = [Keypoint3D(name=str(n), position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
                      confidence=1.0, valid=True, reprojection_error=0.0)
           for n, p in zip(names, labels['keypoints_3d'])]
    msg.keypoints_3d = ObjectKeypoints3D(class_name=cls, instance_id='0', keypoints=kp3,
                                         pose_valid=True,
                                         pose=pose_msg(labels['object_pose']),
                                         pose_fit_rmse=0.0)
    msg.baseline = float(labels.get('baseline', 0.0))
    msg.variables = [SceneVariable(name=n, value=float(d['value']), bin=int(d['bin']),
                                   num_bins=int(sampler[n].bins) if n in sampler else 0)
                     for n, d in labels['variables'].items()]
    return msg


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


# -- sampler feedback and state ------------------------------------------------------

def feedback_msg(counts: Mapping[str, Sequence[float]], source: str = '') -> SamplerFeedback:
    """Build a SamplerFeedback message of ``{variable name: counts per bin}``."""
    return SamplerFeedback(source=source, variables=[
        SceneVariableCounts(name=str(n), counts=[float(c) for c in np.ravel(v)])
        for n, v in counts.items()])


def check_feedback(msg: SamplerFeedback, sampler) -> tuple:
    """Validate a feedback message against a sampler.

    Returns:
        ``(counts, problems)``: ``counts`` ``{name: (K,) float64}`` (entries
        of the same name summed) and a list of human-readable problems (the
        message must be rejected when it is not empty).
    """
    counts: Dict[str, np.ndarray] = {}
    problems = []
    if not msg.variables:
        problems.append('no variables')
    for e in msg.variables:
        if e.name not in sampler:
            problems.append(f'unknown variable {e.name!r}')
            continue
        k = sampler[e.name].bins
        c = np.asarray(e.counts, dtype=np.float64)
        if c.shape != (k,):
            problems.append(f'{e.name}: {c.size} counts, the variable has {k} bins')
        elif not np.all(np.isfinite(c)) or np.any(c < 0):
            problems.append(f'{e.name}: counts must be finite and >= 0, got {c.tolist()}')
        else:
            counts[e.name] = counts.get(e.name, 0.0) + c
    return counts, problems


def sampler_state_msg(sampler, stamp, seed: int, num_updates: int,
                      next_index: int) -> SamplerState:
    """Build the SamplerState message of a scene sampler (core.scene_sampler.SceneSampler)."""
    msg = SamplerState(seed=int(seed), num_updates=int(num_updates),
                       next_index=int(next_index))
    msg.header.stamp = stamp
    msg.variables = [SceneVariableDirichlet(name=n, lo=v.lo, hi=v.hi, categorical=v.categorical,
                                            alpha_prior=[float(a) for a in v.theta0],
                                            alpha=[float(a) for a in v.theta])
                     for n, v in sampler.variables.items()]
    return msg


def sampler_state_dict(msg: SamplerState) -> dict:
    """Convert a SamplerState message to a dict like ``SceneSampler.state_dict()``.

    ``{'variables': {name: {lo, hi, bins, categorical, theta0, theta}},
    'seed', 'num_updates', 'next_index', 'stamp'}`` (stamp in seconds); the
    result can be passed to ``SceneSampler.load_state_dict``.
    """
    return {'variables': {v.name: {'name': v.name, 'lo': v.lo, 'hi': v.hi,
                                   'bins': len(v.alpha), 'categorical': bool(v.categorical),
                                   'theta0': [float(a) for a in v.alpha_prior],
                                   'theta': [float(a) for a in v.alpha]}
                          for v in msg.variables},
            'seed': int(msg.seed), 'num_updates': int(msg.num_updates),
            'next_index': int(msg.next_index),
            'stamp': msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec}
