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
"""Sample <-> message conversions of the streaming node (no DDS traffic)."""

import numpy as np
import pytest

import keypoint_msgs.msg  # noqa: E402,F401

from conftest import CLEAN  # noqa: E402


@pytest.fixture(scope='module')
def sample(generator):
    return generator.generate(4, 11, overrides=CLEAN)


def test_labels_round_trip(sample, generator):
    from rclpy.serialization import deserialize_message, serialize_message
    from builtin_interfaces.msg import Time
    from keypoint_msgs.msg import SampleLabels
    from sim_datagen import ros_messages as rm
    lab = sample['labels']
    msg = rm.labels_to_msg(lab, generator.sampler, Time(sec=5, nanosec=7), 'left_opt')
    msg = deserialize_message(serialize_message(msg), SampleLabels)
    assert msg.header.frame_id == 'left_opt' and msg.sample_key == '000000004'
    assert (msg.seed, msg.index) == (11, 4)
    for view in ('left', 'right'):
        obj = getattr(msg, view)
        assert [k.valid for k in obj.keypoints] == [v == 2 for v in lab['visibility'][view]]
    back = rm.msg_to_labels(msg)
    assert back['keypoint_names'] == lab['keypoint_names']
    assert back['object_class'] == lab['object_class']
    for view in ('left', 'right'):
        np.testing.assert_allclose(back['keypoints_2d'][view], lab['keypoints_2d'][view])
        assert back['visibility'][view] == lab['visibility'][view]
    np.testing.assert_allclose(back['keypoints_3d'], lab['keypoints_3d'])
    np.testing.assert_allclose(back['object_pose'], lab['object_pose'], atol=1e-12)
    assert back['baseline'] == lab['baseline']
    assert list(back['variables']) == list(lab['variables'])
    for n, d in lab['variables'].items():
        assert back['variables'][n]['bin'] == d['bin']
        assert back['variables'][n]['value'] == pytest.approx(d['value'])
        assert back['variables'][n]['num_bins'] == generator.sampler[n].bins


def test_camera_info_and_image(sample):
    from builtin_interfaces.msg import Time
    from sim_datagen import ros_messages as rm
    from sensor_msgs.msg import Image
    ci = sample['labels']['camera_info']['right']
    msg = rm.camera_info_msg(ci, Time(sec=1))
    back = rm.camera_info_dict(msg)
    for k in ('K', 'P', 'D', 'R'):
        np.testing.assert_allclose(back[k], np.ravel(ci[k]))
    assert (back['width'], back['height'], back['frame_id']) == (ci['width'], ci['height'],
                                                                 ci['frame_id'])
    img = sample['left']
    h, w = img.shape[:2]
    padded = np.zeros((h, w * 3 + 4), np.uint8)  # a row step with padding
    padded[:, :w * 3] = img.reshape(h, -1)
    m = Image(height=h, width=w, encoding='rgb8', step=w * 3 + 4, data=padded.tobytes())
    np.testing.assert_array_equal(rm.image_to_array(m), img)
    m = Image(height=h, width=w, encoding='bgr8', step=w * 3,
              data=np.ascontiguousarray(img[:, :, ::-1]).tobytes())
    np.testing.assert_array_equal(rm.image_to_array(m), img)
    with pytest.raises(ValueError):
        rm.image_to_array(Image(height=h, width=w, encoding='16UC1', step=w * 2))


def test_feedback_checks(generator):
    from sim_datagen import ros_messages as rm
    s = generator.sampler
    k = s['tilt_x'].bins
    counts, problems = rm.check_feedback(
        rm.feedback_msg({'tilt_x': np.arange(k), 'roll': np.ones(s['roll'].bins)}), s)
    assert problems == [] and sorted(counts) == ['roll', 'tilt_x']
    np.testing.assert_array_equal(counts['tilt_x'], np.arange(k))
    msg = rm.feedback_msg({'tilt_x': [1.0] * k})
    msg.variables = list(msg.variables) * 2  # the same variable twice adds up
    counts, problems = rm.check_feedback(msg, s)
    assert problems == [] and counts['tilt_x'].tolist() == [2.0] * k
    for bad, text in (({'no_such_variable': [1.0]}, 'unknown variable'),
                      ({'tilt_x': [1.0] * (k + 1)}, f'has {k} bins'),
                      ({'tilt_x': [-1.0] + [0.0] * (k - 1)}, '>= 0'),
                      ({'tilt_x': [float('nan')] * k}, 'finite'),
                      ({'tilt_x': [1e308] * k}, 'more than 1e+06'),  # would make theta inf
                      ({}, 'no variables')):
        _, problems = rm.check_feedback(rm.feedback_msg(bad), s)
        assert problems and text in problems[0], (bad, problems)


def test_sampler_state_message_loads_back(config):
    from builtin_interfaces.msg import Time
    from sim_datagen import ros_messages as rm
    from keypoint_perception.core.scene_sampler import SceneSampler
    s = SceneSampler.from_config(config['variables'])
    s.update({'roll': np.arange(s['roll'].bins, dtype=float)})
    d = rm.sampler_state_dict(rm.sampler_state_msg(s, Time(sec=3), 7, 1, 42))
    assert (d['seed'], d['num_updates'], d['next_index']) == (7, 1, 42)
    fresh = SceneSampler.from_config(config['variables'])
    fresh.load_state_dict(d)
    for n, v in s.variables.items():
        np.testing.assert_array_equal(fresh[n].theta, v.theta)
        assert d['variables'][n]['theta0'] == v.theta0.tolist()
