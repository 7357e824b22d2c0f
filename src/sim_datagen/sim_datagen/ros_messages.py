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
dict -> messages).  The reading direction (messages -> the labels dict of
the on-disk format, see :mod:`sim_datagen.writer`) is
:mod:`keypoint_perception.nodes.sample_messages`, shared with the trainer's
``StreamDataset`` (which must not import sim_datagen); its functions are
re-exported here.  Imports rclpy message packages; the offline tools (cli,
generator, writer, coco) never import this module.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence

from geometry_msgs.msg import Point
from keypoint_msgs.msg import (Keypoint2D, Keypoint3D, ObjectKeypoints2D, ObjectKeypoints3D,
                               SampleLabels, SamplerFeedback, SamplerState, SceneVariable,
                               SceneVariableDirichlet)
from keypoint_perception.core.dataset import camera_model_from_label
from keypoint_perception.nodes.conversions import camera_info_msg as model_camera_info_msg
from keypoint_perception.nodes.conversions import pose_msg
from keypoint_perception.nodes.sample_messages import (  # noqa: F401 - re-exported
    camera_info_dict, feedback_msg, image_to_array, matrix_from_pose, msg_to_labels,
    sampler_state_dict)
import numpy as np
from sensor_msgs.msg import CameraInfo

VISIBLE = SampleLabels.VISIBILITY_VISIBLE


# -- images and camera infos ---------------------------------------------------------

def camera_info_msg(ci: Mapping, stamp) -> CameraInfo:
    """sensor_msgs/CameraInfo of a labels ``camera_info[view]`` dict.

    ``ci`` has ``frame_id``, ``width``, ``height``, ``distortion_model``,
    ``D`` (5,), ``K`` (9,) / (3, 3), ``R`` and ``P`` (12,) / (3, 4); pixels.
    The message is made by the one CameraInfo converter,
    :func:`keypoint_perception.nodes.conversions.camera_info_msg`.

    Raises:
        CalibrationError: a calibration the camera model refuses.
    """
    return model_camera_info_msg(camera_model_from_label(ci), stamp)


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


# -- sampler feedback and state ------------------------------------------------------

#: Most counts one feedback message may add to one variable.  A feedback round of
#: the trainer sends at most its validation set's size (hundreds); a sum like 1e308
#: made the Dirichlet parameters inf and every later sample fail.
MAX_FEEDBACK_COUNTS = 1e6


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
        elif c.sum() > MAX_FEEDBACK_COUNTS:
            problems.append(f'{e.name}: {c.sum():g} counts in one message, more than '
                            f'{MAX_FEEDBACK_COUNTS:g} (the prior would be replaced, not updated)')
        else:
            counts[e.name] = counts.get(e.name, 0.0) + c
    return counts, problems


def sampler_state_msg(sampler, stamp, seed: int, num_updates: int,
                      next_index: int, last_feedback_source: str = '') -> SamplerState:
    """Build the SamplerState message of a scene sampler (core.scene_sampler.SceneSampler).

    ``last_feedback_source`` is the ``source`` of the last applied feedback message.
    """
    msg = SamplerState(seed=int(seed), num_updates=int(num_updates),
                       next_index=int(next_index),
                       last_feedback_source=str(last_feedback_source))
    msg.header.stamp = stamp
    msg.variables = [SceneVariableDirichlet(name=n, lo=v.lo, hi=v.hi, categorical=v.categorical,
                                            alpha_prior=[float(a) for a in v.theta0],
                                            alpha=[float(a) for a in v.theta])
                     for n, v in sampler.variables.items()]
    return msg
