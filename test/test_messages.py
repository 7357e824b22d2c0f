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
"""
Tests of the keypoint_msgs interfaces.

Every message builds with defaults and with field values, round-trips through
rclpy serialization with equal fields, has the documented fields and types,
and its .msg file follows the project's conventions (purpose comment at the
top, a comment above every field, header only on the top-level messages).
"""

import math
import pathlib
import re
import struct

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from keypoint_msgs.msg import Keypoint2D
from keypoint_msgs.msg import Keypoint3D
from keypoint_msgs.msg import Keypoints3D
from keypoint_msgs.msg import ObjectKeypoints2D
from keypoint_msgs.msg import ObjectKeypoints3D
from keypoint_msgs.msg import SampleLabels
from keypoint_msgs.msg import SamplerFeedback
from keypoint_msgs.msg import SamplerState
from keypoint_msgs.msg import SceneVariable
from keypoint_msgs.msg import SceneVariableCounts
from keypoint_msgs.msg import SceneVariableDirichlet
from keypoint_msgs.msg import StereoKeypoints2D
from keypoint_msgs.msg import ViewKeypoints2D
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

MSG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'src' / 'keypoint_msgs' / 'msg'

EXPECTED_FIELDS = {
    Keypoint2D: {'name': 'string', 'x': 'double', 'y': 'double', 'confidence': 'float',
                 'valid': 'boolean'},
    ObjectKeypoints2D: {'class_name': 'string', 'instance_id': 'string',
                        'keypoints': 'sequence<keypoint_msgs/Keypoint2D>'},
    ViewKeypoints2D: {'frame_id': 'string', 'height': 'uint32', 'width': 'uint32',
                      'objects': 'sequence<keypoint_msgs/ObjectKeypoints2D>'},
    StereoKeypoints2D: {'header': 'std_msgs/Header', 'left': 'keypoint_msgs/ViewKeypoints2D',
                        'right': 'keypoint_msgs/ViewKeypoints2D'},
    Keypoint3D: {'name': 'string', 'position': 'geometry_msgs/Point', 'confidence': 'float',
                 'valid': 'boolean', 'reprojection_error': 'float'},
    ObjectKeypoints3D: {'class_name': 'string', 'instance_id': 'string',
                        'keypoints': 'sequence<keypoint_msgs/Keypoint3D>',
                        'pose_valid': 'boolean', 'pose': 'geometry_msgs/Pose',
                        'pose_fit_rmse': 'float'},
    Keypoints3D: {'header': 'std_msgs/Header',
                  'objects': 'sequence<keypoint_msgs/ObjectKeypoints3D>'},
    SceneVariable: {'name': 'string', 'value': 'double', 'bin': 'uint32', 'num_bins': 'uint32'},
    SampleLabels: {'header': 'std_msgs/Header', 'sample_key': 'string', 'seed': 'uint64',
                   'index': 'uint32', 'left': 'keypoint_msgs/ObjectKeypoints2D',
                   'left_visibility': 'sequence<uint8>',
                   'right': 'keypoint_msgs/ObjectKeypoints2D',
                   'right_visibility': 'sequence<uint8>',
                   'keypoints_3d': 'keypoint_msgs/ObjectKeypoints3D', 'baseline': 'double',
                   'variables': 'sequence<keypoint_msgs/SceneVariable>'},
    SceneVariableCounts: {'name': 'string', 'counts': 'sequence<double>'},
    SamplerFeedback: {'source': 'string',
                      'variables': 'sequence<keypoint_msgs/SceneVariableCounts>'},
    SceneVariableDirichlet: {'name': 'string', 'lo': 'double', 'hi': 'double',
                             'categorical': 'boolean', 'alpha_prior': 'sequence<double>',
                             'alpha': 'sequence<double>'},
    SamplerState: {'header': 'std_msgs/Header', 'seed': 'uint64', 'num_updates': 'uint32',
                   'last_feedback_source': 'string', 'next_index': 'uint32',
                   'variables': 'sequence<keypoint_msgs/SceneVariableDirichlet>'},
}
TOP_LEVEL = {StereoKeypoints2D, Keypoints3D, SampleLabels, SamplerState}


def header(sec=1700000000, nanosec=123456789, frame='left_camera_optical_frame'):
    """Return a filled std_msgs/Header."""
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame)


def keypoint_2d(i):
    """Return a filled Keypoint2D (valid on even i)."""
    return Keypoint2D(name='corner_%d' % i, x=10.25 + i, y=-0.5 + 2 * i,
                      confidence=0.5 + 0.125 * (i % 3), valid=i % 2 == 0)


def keypoint_3d(i):
    """Return a filled Keypoint3D; invalid ones carry NaN reprojection errors."""
    valid = i % 2 == 0
    return Keypoint3D(name='corner_%d' % i,
                      position=Point(x=0.01 * i, y=-0.02 * i, z=0.5 + 0.001 * i),
                      confidence=0.75, valid=valid,
                      reprojection_error=0.25 * i if valid else float('nan'))


def view(frame, n_objects=2, n_keypoints=3):
    """Return a filled ViewKeypoints2D."""
    objects = [ObjectKeypoints2D(class_name='checkerboard', instance_id='board_%d' % k,
                                 keypoints=[keypoint_2d(i) for i in range(n_keypoints)])
               for k in range(n_objects)]
    return ViewKeypoints2D(frame_id=frame, height=480, width=640, objects=objects)


def filled_messages():
    """Return one filled instance of every message type."""
    obj3 = ObjectKeypoints3D(
        class_name='mug', instance_id='mug_0',
        keypoints=[keypoint_3d(i) for i in range(3)], pose_valid=True,
        pose=Pose(position=Point(x=0.1, y=0.2, z=0.9),
                  orientation=Quaternion(x=0.0, y=0.0, z=math.sqrt(0.5), w=math.sqrt(0.5))),
        pose_fit_rmse=0.002)
    return {
        Keypoint2D: keypoint_2d(0),
        ObjectKeypoints2D: view('left').objects[0],
        ViewKeypoints2D: view('left_optical'),
        StereoKeypoints2D: StereoKeypoints2D(header=header(), left=view('left_optical'),
                                             right=view('right_optical', n_objects=1)),
        Keypoint3D: keypoint_3d(2),
        ObjectKeypoints3D: obj3,
        Keypoints3D: Keypoints3D(header=header(), objects=[obj3, ObjectKeypoints3D()]),
        SceneVariable: SceneVariable(name='tilt_x', value=-12.5, bin=2, num_bins=6),
        SampleLabels: SampleLabels(
            header=header(), sample_key='000000042', seed=2 ** 40 + 3, index=42,
            left=view('left').objects[0], left_visibility=[2, 1, 0],
            right=view('right').objects[1], right_visibility=[0, 2, 2], keypoints_3d=obj3,
            baseline=0.12, variables=[SceneVariable(name='roll', value=3.0, bin=4, num_bins=8),
                                      SceneVariable(name='hands', value=2.0, bin=2,
                                                    num_bins=4)]),
        SceneVariableCounts: SceneVariableCounts(name='roll', counts=[0.0, 1.5, 3.0]),
        SamplerFeedback: SamplerFeedback(source='trainer', variables=[
            SceneVariableCounts(name='roll', counts=[1.0, 2.0]),
            SceneVariableCounts(name='hands', counts=[0.0])]),
        SceneVariableDirichlet: SceneVariableDirichlet(name='fx', lo=420.0, hi=650.0,
                                                       categorical=False,
                                                       alpha_prior=[1.0, 1.0],
                                                       alpha=[1.0, 4.5]),
        SamplerState: SamplerState(
            header=header(frame=''), seed=7, num_updates=3,
            last_feedback_source='trainer round 3', next_index=120,
            variables=[SceneVariableDirichlet(name='hands', lo=0.0, hi=4.0, categorical=True,
                                              alpha_prior=[2.0, 1.0, 1.0, 4.0],
                                              alpha=[2.0, 1.0, 6.0, 4.0])]),
    }


def as_float32(value):
    """Return ``value`` rounded to float32, as serialization stores a float32 field."""
    return struct.unpack('<f', struct.pack('<f', value))[0]


def assert_same(a, b):
    """Assert two messages have equal fields (float32 precision, NaN equals NaN)."""
    assert type(a) is type(b)
    for field, field_type in a.get_fields_and_field_types().items():
        va, vb = getattr(a, field), getattr(b, field)
        if field_type == 'float':
            va, vb = as_float32(va), as_float32(vb)
        if isinstance(va, list):
            assert len(va) == len(vb), field
            for ea, eb in zip(va, vb):
                assert_same(ea, eb)
        elif hasattr(va, 'get_fields_and_field_types'):
            assert_same(va, vb)
        elif isinstance(va, float) and math.isnan(va):
            assert math.isnan(vb), field
        else:
            assert va == vb, field


@pytest.mark.parametrize('msg_type', list(EXPECTED_FIELDS), ids=lambda t: t.__name__)
def test_fields_and_types(msg_type):
    """Each message has exactly the documented fields with the documented types."""
    assert msg_type.get_fields_and_field_types() == EXPECTED_FIELDS[msg_type]


@pytest.mark.parametrize('msg_type', list(EXPECTED_FIELDS), ids=lambda t: t.__name__)
def test_default_round_trip(msg_type):
    """A default-constructed message round-trips through serialization."""
    msg = msg_type()
    back = deserialize_message(serialize_message(msg), msg_type)
    assert back == msg
    assert_same(back, msg)


@pytest.mark.parametrize('msg_type', list(EXPECTED_FIELDS), ids=lambda t: t.__name__)
def test_filled_round_trip(msg_type):
    """A message with every field set round-trips with equal fields."""
    msg = filled_messages()[msg_type]
    back = deserialize_message(serialize_message(msg), msg_type)
    assert_same(back, msg)


def test_filled_values_survive_exactly():
    """Spot-check values, float32 precision and NaN after a round trip."""
    msgs = filled_messages()
    stereo = deserialize_message(serialize_message(msgs[StereoKeypoints2D]), StereoKeypoints2D)
    assert stereo.header.stamp.nanosec == 123456789
    assert stereo.header.frame_id == 'left_camera_optical_frame'
    assert stereo.left.frame_id == 'left_optical' and stereo.right.frame_id == 'right_optical'
    assert (stereo.left.width, stereo.left.height) == (640, 480)
    assert len(stereo.left.objects) == 2 and len(stereo.right.objects) == 1
    kp = stereo.left.objects[1].keypoints[2]
    assert (kp.name, kp.x, kp.y, kp.valid) == ('corner_2', 12.25, 3.5, True)
    assert kp.confidence == pytest.approx(0.75)
    out = deserialize_message(serialize_message(msgs[Keypoints3D]), Keypoints3D)
    mug = out.objects[0]
    assert mug.pose_valid and mug.pose.orientation.w == pytest.approx(math.sqrt(0.5))
    assert mug.pose_fit_rmse == pytest.approx(0.002)
    assert math.isnan(mug.keypoints[1].reprojection_error) and not mug.keypoints[1].valid
    assert mug.keypoints[2].position.z == pytest.approx(0.502)


def test_defaults():
    """Defaults: invalid keypoints, identity pose, empty lists."""
    obj = ObjectKeypoints3D()
    assert not obj.pose_valid
    assert (obj.pose.orientation.x, obj.pose.orientation.y, obj.pose.orientation.z,
            obj.pose.orientation.w) == (0.0, 0.0, 0.0, 1.0)
    assert (obj.pose.position.x, obj.pose.position.y, obj.pose.position.z) == (0.0, 0.0, 0.0)
    assert obj.keypoints == []
    assert not Keypoint2D().valid and not Keypoint3D().valid
    assert Keypoints3D().objects == [] and StereoKeypoints2D().left.objects == []


def _msg_lines(msg_type):
    """Return the stripped, non-empty lines of a message's .msg file."""
    path = MSG_DIR / ('%s.msg' % msg_type.__name__)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize('msg_type', list(EXPECTED_FIELDS), ids=lambda t: t.__name__)
def test_msg_file_conventions(msg_type):
    """Purpose comment first, a comment above every field, header only on top level.

    Constants (``uint8 NAME=2``) need a comment above them too.
    """
    lines = _msg_lines(msg_type)
    assert lines[0].startswith('#'), 'the .msg file must start with a purpose comment'
    field = re.compile(r'^[A-Za-z][\w/]*(\[\d*\])?\s+\w+')
    fields = []
    for i, line in enumerate(lines):
        if line.startswith('#'):
            continue
        assert field.match(line), line
        assert lines[i - 1].startswith('#'), 'no comment above field: %s' % line
        if '=' in line.split('#')[0]:
            name = line.split('=')[0].split()[1]
            assert name.isupper() and hasattr(msg_type, name), line
            continue
        fields.append(line.split()[1])
    assert sorted(fields) == sorted(EXPECTED_FIELDS[msg_type])
    assert ('header' in fields) == (msg_type in TOP_LEVEL)
