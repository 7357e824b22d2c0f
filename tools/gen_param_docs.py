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
"""Write the topic and parameter tables of docs/nodes.md from the code.

* ``stereo_keypoint_node`` and ``mono_keypoint_node`` parameters: from
  :class:`keypoint_perception.core.config.PipelineConfig`'s table,
  ``robot_calibration_node``'s from ``RobotCalibrationConfig`` (no ROS
  needed);
* every node's topics (types, QoS) and the parameters of
  ``stereo_replay_node`` and ``sim_stream_node``: from the nodes themselves,
  built in this process (localhost discovery only, ROS_DOMAIN_ID 112 unless
  set) under a namespace, so that relative topic names show as relative.

Each table is written between ``<!-- BEGIN <section> -->`` and
``<!-- END <section> -->`` in docs/nodes.md; the text around them is kept.

Usage (from the repository root, in the workspace environment)::

    source tools/env.sh && python tools/gen_param_docs.py [--check]

``--check`` writes nothing and exits 1 when docs/nodes.md differs.
"""

import argparse
import contextlib
import os
import sys
import tempfile
from typing import Dict, Iterable, List, Sequence

import cv2
from keypoint_perception.core.config import parameter_specs, RobotCalibrationConfig
from keypoint_perception.core.parameter_table import ParameterSpec, table_specs
from keypoint_perception.nodes.mono_keypoint_node import MONO_PARAMETERS, MonoKeypointNode
from keypoint_perception.nodes.robot_calibration_node import RobotCalibrationNode
from keypoint_perception.nodes.stereo_keypoint_node import StereoKeypointNode
from keypoint_perception.nodes.stereo_replay_node import StereoReplayNode
import numpy as np
import yaml
from rcl_interfaces.msg import ParameterType
import rclpy
from rclpy.parameter import Parameter
from sim_datagen.nodes.stream_node import SimStreamNode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, 'docs', 'nodes.md')

#: Namespace the nodes are built under: relative topics show without it.
NAMESPACE = '/gen_param_docs'
#: Parameters every rclpy node declares by itself.
BUILTIN_PARAMETERS = ('use_sim_time', 'start_type_description_service')
#: Topics every rclpy node has.
BUILTIN_TOPICS = ('/parameter_events', '/rosout')


def _cell(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_cell(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _value(value) -> str:
    """Format a parameter value in code format as a YAML file writes it (``4.0``, ``'0'``).

    Strings that YAML would read as something else (``''``, ``'0'``,
    ``'off'``) are quoted.
    """
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, str):
        text = value if value and yaml.safe_load(value) == value else repr(value)
    else:
        text = repr(value)
    return f'`{text}`'


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else f'{value:g}'


def _range(low, high, choices=()) -> str:
    if choices:
        return ', '.join(f'`{c}`' for c in choices)
    if low is None:
        return ''
    return f'[{_number(low)}, {_number(high)}]'


PARAMETER_HEADER = ('Name', 'Type', 'Default', 'Range / values', 'Restart', 'Description')


def config_parameter_table(specs: Sequence[ParameterSpec] = None) -> str:
    """Markdown table of a parameter table's parameters (default: ``PipelineConfig``'s).

    Restart = read-only ROS parameter (takes effect when the node starts).
    """
    rows = []
    for spec in specs if specs is not None else parameter_specs():
        rows.append((f'`{spec.name}`', spec.ros_type, _value(spec.default),
                     _range(spec.low, spec.high, spec.choices), 'yes' if spec.read_only else '',
                     spec.description))
    return _markdown(PARAMETER_HEADER, rows)


def node_parameter_table(node, defaults: Dict[str, object]) -> str:
    """Markdown table of the parameters a built rclpy node declared.

    Args:
        node: the node; its parameter descriptors give type, range,
            read-only and description.
        defaults: {name: default value passed to ``declare_parameter``}
            (see :func:`_recording`).
    """
    types = {ParameterType.PARAMETER_BOOL: 'bool', ParameterType.PARAMETER_INTEGER: 'integer',
             ParameterType.PARAMETER_DOUBLE: 'double', ParameterType.PARAMETER_STRING: 'string'}
    names = [n for n in node.list_parameters([], 0).names if n not in BUILTIN_PARAMETERS]
    rows = []
    for name, desc in zip(names, node.describe_parameters(names)):
        value = defaults[name]
        if desc.floating_point_range:
            rng = desc.floating_point_range[0]
            span = _range(rng.from_value, rng.to_value)
        elif desc.integer_range:
            rng = desc.integer_range[0]
            span = _range(rng.from_value, rng.to_value)
        else:
            span = desc.additional_constraints
        rows.append((f'`{name}`', types.get(desc.type, 'dynamic'), _value(value), span,
                     'yes' if desc.read_only else '', desc.description))
    return _markdown(PARAMETER_HEADER, rows)


def _qos(profile) -> str:
    """E.g. ``reliable, volatile, keep last 10``."""
    history = (f'keep last {profile.depth}' if profile.history.name == 'KEEP_LAST'
               else profile.history.name.lower().replace('_', ' '))
    return (f'{profile.reliability.name.lower().replace("_", " ")}, '
            f'{profile.durability.name.lower().replace("_", " ")}, {history}')


def _type_name(msg_type) -> str:
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


def topic_table(node) -> str:
    """Markdown table of a built node's subscriptions and publishers (type and QoS).

    Names under :data:`NAMESPACE` are shown relative (remappable), others
    absolute.
    """
    rows = []
    for direction, endpoints in (('subscribed', node.subscriptions),
                                 ('published', node.publishers)):
        for end in sorted(endpoints, key=lambda e: e.topic_name):
            if end.topic_name in BUILTIN_TOPICS:
                continue
            name = end.topic_name
            if name.startswith(NAMESPACE + '/'):
                name = name[len(NAMESPACE) + 1:]
            rows.append((direction, f'`{name}`', f'`{_type_name(end.msg_type)}`',
                         _qos(end.qos_profile)))
    return _markdown(('Direction', 'Topic', 'Type', 'QoS'), rows)


@contextlib.contextmanager
def _context():
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('ROS_DOMAIN_ID', '112')
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


def _replay_inputs(folder: str) -> List:
    """Two tiny image pairs and the shipped camera_info files, for building the replay node."""
    for side in ('left', 'right'):
        cv2.imwrite(os.path.join(folder, f'{side}1.png'), np.zeros((4, 4), np.uint8))
    info = os.path.join(ROOT, 'config', 'camera_info', 'opencv_stereo_{}.yaml')
    return [Parameter('left_images', value=os.path.join(folder, 'left*.png')),
            Parameter('right_images', value=os.path.join(folder, 'right*.png')),
            Parameter('left_camera_info', value=info.format('left')),
            Parameter('right_camera_info', value=info.format('right'))]


def _recording(node_class):
    """Subclass of ``node_class`` that records each declared parameter's default.

    The defaults are what ``declare_parameter`` is given, whatever the
    overrides; they land in the subclass's ``defaults`` dict.
    """
    class Recording(node_class):
        defaults = {}

        def declare_parameter(self, name, value=None, *args, **kwargs):
            Recording.defaults[name] = value
            return super().declare_parameter(name, value, *args, **kwargs)

    return Recording


def sections() -> Dict[str, str]:
    """Every generated section of docs/nodes.md: {section name: markdown}."""
    from_tables = ('stereo_keypoint_node', 'mono_keypoint_node', 'robot_calibration_node')
    out = {'stereo_keypoint_node parameters': config_parameter_table(),
           'mono_keypoint_node parameters': config_parameter_table(
               [spec for spec in parameter_specs() if spec.name in MONO_PARAMETERS]),
           'robot_calibration_node parameters': config_parameter_table(
               list(table_specs(RobotCalibrationConfig).values()))}
    with _context() as context, tempfile.TemporaryDirectory() as folder:
        builders = (('stereo_keypoint_node', StereoKeypointNode, []),
                    ('mono_keypoint_node', MonoKeypointNode, []),
                    ('robot_calibration_node', RobotCalibrationNode, []),
                    ('stereo_replay_node', StereoReplayNode, _replay_inputs(folder)),
                    ('sim_stream_node', SimStreamNode, []))
        for name, node_class, overrides in builders:
            recording = _recording(node_class)
            node = recording(context=context, namespace=NAMESPACE,
                             parameter_overrides=overrides)
            try:
                out[f'{name} topics'] = topic_table(node)
                if name not in from_tables:
                    out[f'{name} parameters'] = node_parameter_table(node, recording.defaults)
            finally:
                node.destroy_node()
    return out


def update(text: str, generated: Dict[str, str]) -> str:
    """Replace each ``<!-- BEGIN name -->...<!-- END name -->`` block of ``text``.

    Raises:
        ValueError: a section's markers are missing.
    """
    for name, body in generated.items():
        begin, end = f'<!-- BEGIN {name} -->', f'<!-- END {name} -->'
        if begin not in text or end not in text:
            raise ValueError(f'docs/nodes.md has no {begin} ... {end} markers')
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f'{head}{begin}\n{body}\n{end}{tail}'
    return text


def main(argv=None) -> int:
    """Regenerate (or with ``--check`` compare) the tables of docs/nodes.md."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true',
                        help='compare only; exit 1 when docs/nodes.md is out of date')
    parser.add_argument('--doc', default=DOC, help='the file to update')
    args = parser.parse_args(argv)
    with open(args.doc) as f:
        current = f.read()
    wanted = update(current, sections())
    if args.check:
        if wanted != current:
            print(f'{args.doc} is out of date: run python tools/gen_param_docs.py',
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        with open(args.doc, 'w') as f:
            f.write(wanted)
    print(f'wrote {args.doc}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
