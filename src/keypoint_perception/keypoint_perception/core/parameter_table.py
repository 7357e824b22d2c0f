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
"""Parameter tables: frozen dataclasses whose fields are a node's parameters (no ROS).

:func:`param_field` declares a field with its default, description, group,
range or choices, read-only flag and launch exposure; :class:`ParameterTable`
validates every field on construction; :func:`table_specs` gives the
:class:`ParameterSpec` of each field, from which a node declares its ROS
parameters (``nodes/parameters.py``) and ``docs/nodes.md`` is generated.
The tables themselves are in :mod:`.config`.
"""

import dataclasses
from dataclasses import dataclass
import math
import re
from typing import Any, Dict, Mapping, Optional, Tuple

#: ROS parameter type names (rcl_interfaces/ParameterType) of the Python types.
ROS_TYPES = {bool: 'bool', int: 'integer', float: 'double', str: 'string'}

#: A TF frame name (or prefix): segments of letters, digits, ``_``, ``-``, ``.``
#: separated by single ``/``, no leading or trailing ``/`` (tf2 frame ids).
_FRAME_NAME = re.compile(r'[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*')


def param_field(default, description: str, group: str, *, low: Optional[float] = None,
                high: Optional[float] = None, choices: Tuple[str, ...] = (),
                read_only: bool = False, launch: bool = False,
                aliases: Optional[Mapping[Any, str]] = None, numbers_as_text: bool = False,
                frame_name: bool = False):
    """Dataclass field of a :class:`ParameterTable` with its :class:`ParameterSpec` metadata."""
    return dataclasses.field(default=default, metadata={
        'description': description, 'group': group, 'low': low, 'high': high,
        'choices': tuple(choices), 'read_only': read_only, 'launch': launch,
        'aliases': dict(aliases or {}), 'numbers_as_text': numbers_as_text,
        'frame_name': frame_name})


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a :class:`ParameterTable`, as the node declares it.

    Attributes:
        name: parameter name (the field's name).
        python_type: ``bool``, ``int``, ``float`` or ``str``.
        ros_type: ROS parameter type name: ``'bool'``, ``'integer'``,
            ``'double'`` or ``'string'``.
        default: default value (of ``python_type``).
        description: what it does, with units.
        group: the parameter's group (:data:`~.config.GROUPS` for
            :class:`~.config.PipelineConfig`; documentation order).
        low, high: inclusive range of a number, or None.
        choices: allowed values of a string parameter; empty = any.
        read_only: needs a restart of the node (read-only ROS parameter).
        launch: exposed as an argument of ``stereo_keypoints.launch.py``.
        aliases: other values ROS/YAML parsing may deliver for a documented
            value, mapped to it (e.g. ``{False: 'off'}``: YAML reads ``off``
            as the boolean false).
        numbers_as_text: a string parameter that also accepts integers
            (YAML reads ``0`` as an integer), converted with ``str``.
        frame_name: a string parameter that is empty or a TF frame name (or
            part of one): segments of letters, digits, ``_``, ``-``, ``.``
            separated by single ``/``, no leading or trailing ``/`` (tf2
            refuses frame ids that start with ``/``).
        dynamic_typing: the ROS parameter must be declared with dynamic
            typing because YAML may deliver a documented value with another
            type (doubles given as integers, aliases, numbers as text).
    """

    name: str
    python_type: type
    ros_type: str
    default: Any
    description: str
    group: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()
    read_only: bool = False
    launch: bool = False
    aliases: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    numbers_as_text: bool = False
    frame_name: bool = False

    @property
    def dynamic_typing(self) -> bool:
        """Whether YAML may deliver a documented value with another type (see class doc)."""
        return self.python_type is float or bool(self.aliases) or self.numbers_as_text

    def allowed(self) -> str:
        """Describe the allowed values in words, e.g. ``'one of off, incomplete, always'``."""
        if self.choices:
            return 'one of ' + ', '.join(self.choices)
        if self.low is not None:
            return f'{self._article()} {self.ros_type} in [{self.low:g}, {self.high:g}]'
        if self.frame_name:
            return ('a string, empty or a TF frame name: letters, digits, "_", "-", "." in '
                    'segments separated by single "/", not starting or ending with "/"')
        return f'{self._article()} {self.ros_type}'

    def _article(self) -> str:
        return 'an' if self.ros_type[0] in 'aeiou' else 'a'

    def convert(self, value: Any) -> Any:
        """Return ``value`` as this parameter's validated Python value.

        Accepts what ROS/YAML parsing makes of a documented value (see
        :attr:`aliases`, :attr:`numbers_as_text`; integers for doubles).

        Raises:
            ValueError: wrong type, outside the range, not one of the
                choices, or an invalid TF frame prefix; the message names the
                parameter, the value and the allowed values.
        """
        converted = self._converted_type(value)
        if converted is None:
            hint = (' (YAML reads on/off/yes/no/true/false as booleans)'
                    if isinstance(value, bool) and self.python_type is not bool else '')
            raise ValueError(f'parameter {self.name} is {value!r}{hint}; '
                             f'must be {self.allowed()}')
        if self.python_type is float and not math.isfinite(converted):
            raise ValueError(f'parameter {self.name} is {value!r}; must be {self.allowed()}')
        if self.low is not None and not self.low <= converted <= self.high:
            raise ValueError(f'parameter {self.name} is {value!r}; must be {self.allowed()}')
        if self.choices and converted not in self.choices:
            raise ValueError(f'parameter {self.name} is {value!r}; must be {self.allowed()}')
        if self.frame_name and converted and not _FRAME_NAME.fullmatch(str(converted)):
            raise ValueError(f'parameter {self.name} is {value!r}; must be {self.allowed()}')
        return converted

    def _converted_type(self, value: Any) -> Any:
        """``value`` converted to :attr:`python_type`, or None when it has the wrong type."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            if isinstance(value, bool) and self.python_type is bool:
                return value
            return self.aliases.get(value) if isinstance(value, bool) else None
        if self.python_type is float:
            return float(value) if isinstance(value, (int, float)) else None
        if self.python_type is int:
            return value if isinstance(value, int) else None
        if self.python_type is str:
            if isinstance(value, str):
                return value
            return str(value) if self.numbers_as_text and isinstance(value, int) else None
        return None


def _spec(field: dataclasses.Field) -> ParameterSpec:
    meta = field.metadata
    python_type = {'bool': bool, 'int': int, 'float': float, 'str': str}[
        field.type if isinstance(field.type, str) else field.type.__name__]
    return ParameterSpec(field.name, python_type, ROS_TYPES[python_type], field.default,
                         meta['description'], meta['group'], meta['low'], meta['high'],
                         meta['choices'], meta['read_only'], meta['launch'], meta['aliases'],
                         meta['numbers_as_text'], meta['frame_name'])


def table_specs(table: type) -> Dict[str, ParameterSpec]:
    """{name: :class:`ParameterSpec`} of a parameter table's fields, in declaration order.

    Args:
        table: a :class:`ParameterTable` dataclass (the class, not an
            instance).
    """
    specs = _TABLE_SPECS.get(table)
    if specs is None:
        specs = _TABLE_SPECS[table] = {f.name: _spec(f) for f in dataclasses.fields(table)}
    return specs


_TABLE_SPECS: Dict[type, Dict[str, ParameterSpec]] = {}


class ParameterTable:
    """Base of a frozen dataclass whose fields are one node's parameters.

    Each field is declared with :func:`param_field` (default, description, group,
    range or choices, read-only); :func:`table_specs` turns them into
    :class:`ParameterSpec` s, from which the node declares its ROS
    parameters (``nodes/parameters.py``) and ``docs/nodes.md`` is generated.
    Construction validates and converts every field, so an instance always
    holds allowed values.
    """

    def __post_init__(self):
        """Validate and convert every field (see :meth:`ParameterSpec.convert`)."""
        for spec in table_specs(type(self)).values():
            object.__setattr__(self, spec.name, spec.convert(getattr(self, spec.name)))

    def validated(self, **changes):
        """Return a new config with ``changes`` applied and validated; ``self`` is unchanged.

        Raises:
            ValueError: an unknown parameter name, or a value that is not
                allowed (the message names the parameter and the allowed
                values).
        """
        specs = table_specs(type(self))
        unknown = sorted(set(changes) - set(specs))
        if unknown:
            raise ValueError(f'unknown parameter(s) {", ".join(unknown)}; known: '
                             f'{", ".join(specs)}')
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]):
        """Config from a {name: value} mapping (e.g. a parameter YAML); missing names default.

        Raises:
            ValueError: see :meth:`validated`.
        """
        return cls().validated(**dict(values))

    def to_dict(self) -> Dict[str, Any]:
        """{name: value} of every parameter, in table order."""
        return {name: getattr(self, name) for name in table_specs(type(self))}
