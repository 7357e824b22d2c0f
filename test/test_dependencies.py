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
"""Every import is declared in package.xml, and dependencies run one way (issues 15, 16).

The imports of every module of each Python package (and of the launch file)
are read with ``ast`` -- including imports inside functions -- and each
third-party or ROS module must map to a rosdep key (:data:`ROSDEP_KEYS`) that
the package declares as ``<depend>`` or ``<exec_depend>``.  Modules without a
rosdep key (:data:`PIP_ONLY`) must be named in the README's install section.

The module import graph of the workspace must be acyclic, and the layers of
docs/architecture.md hold: keypoint_msgs <- keypoint_perception.core <-
{keypoint_perception.nodes, sim_datagen} <- keypoint_perception.training.
"""

import ast
import os
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, 'src')
README = os.path.join(ROOT, 'README.md')

#: Python package -> extra source files outside the package folder it installs.
PYTHON_PACKAGES = {
    'keypoint_perception': [os.path.join(ROOT, 'launch', 'stereo_keypoints.launch.py'),
                            os.path.join(ROOT, 'launch', 'robot_calibration.launch.py')],
    'sim_datagen': [],
}

#: Top-level Python module -> rosdep key (rosdistro rosdep/python.yaml, base.yaml
#: and the ROS package names).  The Python module tf2_ros is the package
#: tf2_ros_py (the key tf2_ros is the C++ package).
ROSDEP_KEYS = {
    'numpy': 'python3-numpy',
    'cv2': 'python3-opencv',
    'yaml': 'python3-yaml',
    'torch': 'python3-torch',
    'pybullet': 'python3-pybullet-pip',
    'pybullet_data': 'python3-pybullet-pip',
    'tqdm': 'python3-tqdm',
    'matplotlib': 'python3-matplotlib',
    'onnxruntime': 'python3-onnxruntime-pip',
    'pinocchio': 'pinocchio',
    'rclpy': 'rclpy',
    'message_filters': 'message_filters',
    'tf2_ros': 'tf2_ros_py',
    'cv_bridge': 'cv_bridge',
    'ament_index_python': 'ament_index_python',
    'launch': 'launch',
    'launch_ros': 'launch_ros',
    'builtin_interfaces': 'builtin_interfaces',
    'geometry_msgs': 'geometry_msgs',
    'rcl_interfaces': 'rcl_interfaces',
    'sensor_msgs': 'sensor_msgs',
    'std_msgs': 'std_msgs',
    'tf2_msgs': 'tf2_msgs',
    'visualization_msgs': 'visualization_msgs',
    'keypoint_msgs': 'keypoint_msgs',
    'keypoint_perception': 'keypoint_perception',
    'sim_datagen': 'sim_datagen',
}

#: Modules without a rosdep key: installed with pip (README says so).
PIP_ONLY = {
    'onnx': 'ONNX export of a trained network (keypoints-export)',
    'fast_simplification': 'decimates the Panda meshes once, when the cache is missing',
}

#: Workspace packages in dependency order: a package may import only packages
#: listed before it (and itself).
PACKAGE_ORDER = ['keypoint_msgs', 'keypoint_perception', 'sim_datagen']

#: Sub-packages of keypoint_perception and what they must never import
#: (prefixes of module names).
FORBIDDEN = {
    'keypoint_perception.core': ['rclpy', 'message_filters', 'tf2_ros', 'cv_bridge',
                                 'keypoint_perception.nodes', 'keypoint_perception.training',
                                 'sim_datagen'],
    'keypoint_perception.nodes': ['keypoint_perception.training', 'sim_datagen'],
    'keypoint_perception': ['sim_datagen'],
    'sim_datagen': ['keypoint_perception.training'],
}


def _module_files(package):
    """Return {module name: file} of a Python package under src/<package>/<package>."""
    base = os.path.join(SRC, package)
    modules = {}
    for folder, dirs, files in os.walk(os.path.join(base, package)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, base)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                modules['.'.join(parts)] = path
    return modules


def _all_modules():
    modules = {}
    for package in PYTHON_PACKAGES:
        modules.update(_module_files(package))
    return modules


def _is_package(module, path):
    return os.path.basename(path) == '__init__.py'


def _imports(module, path):
    """Absolute names of every module imported by a file (any depth, relative resolved)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if module and _is_package(module, path) else module.rpartition('.')[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                prefix = '.'.join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            names.update(f'{prefix}.{alias.name}' for alias in node.names)
    return names


def _declared_keys(package):
    root = ElementTree.parse(os.path.join(SRC, package, 'package.xml')).getroot()
    return {e.text.strip() for tag in ('depend', 'exec_depend', 'build_export_depend')
            for e in root.iter(tag)}


def _third_party(names, own):
    """Top-level modules of ``names`` that are neither the standard library nor ``own``."""
    tops = {name.split('.')[0] for name in names}
    return {top for top in tops if top not in sys.stdlib_module_names and top != own}


@pytest.mark.parametrize('package', sorted(PYTHON_PACKAGES))
def test_every_import_maps_to_a_declared_rosdep_key(package):
    files = dict(_module_files(package))
    for extra in PYTHON_PACKAGES[package]:
        files[os.path.basename(extra)] = extra
    declared = _declared_keys(package)
    unknown, undeclared = {}, {}
    for module, path in files.items():
        for top in _third_party(_imports(module, path), package):
            if top in PIP_ONLY:
                continue
            if top not in ROSDEP_KEYS:
                unknown.setdefault(top, []).append(module)
            elif ROSDEP_KEYS[top] not in declared:
                undeclared.setdefault(ROSDEP_KEYS[top], []).append(module)
    assert not unknown, f'imports without a rosdep key in ROSDEP_KEYS / PIP_ONLY: {unknown}'
    assert not undeclared, f'{package}/package.xml lacks <exec_depend> for {undeclared}'


def test_tf2_ros_is_declared_with_its_python_key():
    # issue 16 item 6: the key tf2_ros is the C++ package; Python's tf2_ros is tf2_ros_py
    declared = _declared_keys('keypoint_perception')
    assert 'tf2_ros_py' in declared and 'tf2_ros' not in declared


def test_message_dependencies_are_declared():
    msg_dir = os.path.join(SRC, 'keypoint_msgs', 'msg')
    used = set()
    for name in os.listdir(msg_dir):
        with open(os.path.join(msg_dir, name)) as f:
            for line in f:
                field = line.split('#')[0].split()
                if field and '/' in field[0]:
                    used.add(field[0].split('/')[0])
    assert used and used <= _declared_keys('keypoint_msgs'), used


def test_pip_only_modules_are_named_in_the_readme():
    with open(README) as f:
        readme = f.read()
    assert all(module.replace('_', '-') in readme or module in readme for module in PIP_ONLY)


def test_workspace_packages_depend_one_way():
    for package in PYTHON_PACKAGES:
        allowed = set(PACKAGE_ORDER[:PACKAGE_ORDER.index(package) + 1])
        used = {top for path in _module_files(package).values()
                for top in (n.split('.')[0] for n in _imports_of_path(path, package))
                if top in PACKAGE_ORDER}
        assert used <= allowed, f'{package} imports {used - allowed}'
        later = set(PACKAGE_ORDER[PACKAGE_ORDER.index(package) + 1:])
        assert not later & _declared_keys(package), f'{package} declares {later}'


def _imports_of_path(path, package):
    modules = _module_files(package)
    module = next(m for m, p in modules.items() if p == path)
    return _imports(module, path)


def test_layers_never_import_what_they_must_not():
    violations = []
    for module, path in _all_modules().items():
        for owner, forbidden in FORBIDDEN.items():
            if module != owner and not module.startswith(owner + '.'):
                continue
            for name in _imports(module, path):
                if any(name == f or name.startswith(f + '.') for f in forbidden):
                    violations.append(f'{module} imports {name}')
    assert not violations, '\n'.join(sorted(set(violations)))


def _module_graph():
    """Return {module: workspace modules it imports} (the submodule if it exists, else package)."""
    modules = _all_modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in _imports(module, path):
            while name and name not in modules:
                name = name.rpartition('.')[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def _find_cycle(graph):
    """One import cycle as a list of modules, or None (iterative depth-first search)."""
    state = {}
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 'open'
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 'done'
                stack.pop()
                path.pop()
            elif state.get(child) == 'open':
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = 'open'
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_module_import_graph_is_acyclic():
    # A package's __init__ importing its own submodules is not a cycle of
    # dependencies; edges from a package to its submodules are left out.
    graph = {module: {m for m in edges if not m.startswith(module + '.')}
             for module, edges in _module_graph().items()}
    cycle = _find_cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None
