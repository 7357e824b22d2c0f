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
"""Generator configs: finding, reading (``extends``) and checking them.

A generator config is a YAML file (see ``config/checkerboard.yaml``): the
object class it renders, image size, clip planes, outputs, world settings
and the randomized scene ``variables``.  A config may name a base config
with ``extends: <file>`` (relative to its own folder), e.g. the URDF
classes extend ``config/base/urdf_object.yaml``.
"""

from __future__ import annotations

import os
from typing import Optional

from ament_index_python.packages import get_package_share_directory
from keypoint_perception.core.objects import OBJECTS_DIR
import yaml

#: this package's config folder in the source tree
SOURCE_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 'config')


class ConfigError(ValueError):
    """A config or object-class YAML is missing or invalid (the message names file and field)."""


def share_directory(package: str) -> Optional[str]:
    """Return the ament share directory of ``package``, or None when not installed."""
    try:
        return get_package_share_directory(package)
    except (LookupError, OSError):  # not installed / no ament index (AMENT_PREFIX_PATH unset)
        return None


def find_object_yaml(name: str) -> str:
    """Find the object-class YAML ``keypoint_perception/objects/<name>.yaml``.

    Looks in the installed keypoint_perception package, its ament share
    directory (``objects/`` and ``config/objects/``) and this source tree,
    in that order.

    Raises:
        ConfigError: no such object class (the message lists the places tried).
    """
    candidates = [os.path.join(OBJECTS_DIR, f'{name}.yaml')]
    share = share_directory('keypoint_perception')
    if share is not None:
        candidates += [os.path.join(share, 'objects', f'{name}.yaml'),
                       os.path.join(share, 'config', 'objects', f'{name}.yaml')]
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, '..', '..', 'keypoint_perception',
                                   'keypoint_perception', 'objects', f'{name}.yaml'))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    known = sorted(f[:-5] for f in os.listdir(OBJECTS_DIR) if f.endswith('.yaml')) \
        if os.path.isdir(OBJECTS_DIR) else []
    raise ConfigError(f'unknown object class {name!r} (known: {", ".join(known)}; '
                      f'no {name}.yaml in {candidates})')


def resolve_config(path: str) -> str:
    """Resolve a config file path or a bare config name (``checkerboard``) to a file.

    Bare names are looked up in this package's ``config/`` folder (source
    tree) and in its ament share directory.

    Raises:
        ConfigError: no such file or config name.
    """
    if os.path.isfile(path):
        return path
    if os.sep in path:
        raise ConfigError(f'{path}: no such file')
    name = path if path.endswith('.yaml') else path + '.yaml'
    candidates = [os.path.join(SOURCE_CONFIG_DIR, name)]
    share = share_directory('sim_datagen')
    if share is not None:
        candidates.append(os.path.join(share, 'config', name))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    raise ConfigError(f'config {path!r} not found (not a file, and not a name in {candidates})')


def merge_configs(base: dict, override: dict) -> dict:
    """Return ``override`` deep-merged into a copy of ``base`` (neither is changed).

    Mappings merge recursively (base keys keep their order, new keys are
    appended), other values replace, ``None`` deletes the key.
    """
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = value
    return out


def _load_yaml(path: str):
    """Parse a YAML file; a syntax error becomes a ConfigError naming the file and line."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
        problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
        raise ConfigError(f'{path}: not valid YAML{where}: {problem}') from None
    except OSError as exc:
        raise ConfigError(f'{path}: cannot be read: {exc.strerror or exc}') from None


def _read_config(path: str, seen=()) -> dict:
    """Parse a config YAML, following ``extends`` (a path relative to the file)."""
    cfg = _load_yaml(path)
    if not isinstance(cfg, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    cfg = dict(cfg)
    extends = cfg.pop('extends', None)
    if extends is None:
        return cfg
    if not isinstance(extends, str):
        raise ConfigError(f'{path}: extends: expected a file name, got {extends!r}')
    base_path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), extends))
    if base_path in seen or not os.path.isfile(base_path):
        raise ConfigError(f'{path}: extends: {base_path!r} is missing or circular')
    return merge_configs(_read_config(base_path, seen + (base_path,)), cfg)


def load_config(path: str) -> dict:
    """Read a generator config YAML and the object class YAML it names.

    ``path`` may also be a bare name, see :func:`resolve_config`.  A config
    may name a base config with ``extends: <file>`` (relative to its own
    folder); the two are deep-merged (see :func:`merge_configs`:
    ``variables`` of the base come first, in their order; ``name: null``
    removes one).

    Returns:
        The config dict with ``object_def`` (the parsed object YAML),
        ``object_yaml`` (its path) and ``config_file`` (the resolved
        config path) filled in.

    Raises:
        ConfigError: config or object class not found, not valid YAML, or a
            malformed structure (the message names the file and field).
    """
    cfg_path = resolve_config(path)
    cfg = _read_config(cfg_path)
    object_name = cfg.get('object', 'checkerboard')
    if not cfg.get('object_yaml') and not isinstance(object_name, str):
        raise ConfigError(f'{cfg_path}: object: expected an object class name, '
                          f'got {object_name!r}')
    obj_path = cfg.get('object_yaml') or find_object_yaml(object_name)
    object_def = _load_yaml(obj_path)
    if not isinstance(object_def, dict) or not isinstance(object_def.get('keypoints'), list) \
            or not all(isinstance(k, dict) and 'name' in k for k in object_def['keypoints']):
        raise ConfigError(f'{obj_path}: keypoints: expected a list of {{name: ..}} entries')
    if not isinstance(cfg.get('variables'), dict):
        raise ConfigError(f'{cfg_path}: variables: expected a mapping')
    image = cfg.get('image')
    if not isinstance(image, dict) or not all(
            isinstance(image.get(k), int) and not isinstance(image.get(k), bool)
            and image.get(k) > 0 for k in ('width', 'height')):
        raise ConfigError(f'{cfg_path}: image: expected {{width: px, height: px}} with '
                          f'positive integers, got {image!r}')
    cfg['object_def'] = object_def
    cfg['object_yaml'] = obj_path
    cfg['config_file'] = os.path.abspath(cfg_path)
    return cfg
