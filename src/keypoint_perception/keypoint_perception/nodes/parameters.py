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
"""ROS parameters declared from a :class:`~..core.parameter_table.ParameterTable`.

The core stays free of rclpy: this module turns each
:class:`~..core.parameter_table.ParameterSpec` into a ``ParameterDescriptor``
(description, range, read-only, allowed values), declares the parameters on
a node and reads them back as one validated config.
"""

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..core.config import PipelineConfig
from ..core.parameter_table import ParameterSpec, ParameterTable, table_specs


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """Build the ``ParameterDescriptor`` of one parameter of the table.

    Parameters whose documented values YAML may deliver with another type
    (doubles given as integers, ``off`` read as false, numbers for text; see
    :attr:`~..core.parameter_table.ParameterSpec.dynamic_typing`) are declared with
    dynamic typing; their values are checked by
    :meth:`~..core.parameter_table.ParameterSpec.convert` instead of by rclpy's type
    check.
    """
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                               dynamic_typing=spec.dynamic_typing)
    if spec.choices:
        desc.additional_constraints = f'one of {", ".join(spec.choices)}'
    elif spec.aliases or spec.numbers_as_text:
        desc.additional_constraints = f'{spec.allowed()} (YAML values are converted)'
    if spec.low is not None and spec.python_type is float:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    elif spec.low is not None and spec.python_type is int:
        desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                           step=1)]
    return desc


def declare_spec(node: Node, spec: ParameterSpec) -> Any:
    """Declare one parameter from its spec and return its value, converted and checked.

    For a node's parameters outside the tables (e.g. the replay and
    simulator nodes' ``rate``): the same descriptor (dynamic typing where
    YAML may give another type) and check (:meth:`ParameterSpec.convert`,
    ``ValueError`` naming the parameter) as a table's.
    """
    value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
    return spec.convert(value)


def declare_table_parameters(node: Node, table: type = PipelineConfig,
                             names: Optional[Sequence[str]] = None,
                             defaults: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Declare a parameter table's parameters on ``node`` and return their values.

    Args:
        node: the node.
        table: a :class:`~..core.parameter_table.ParameterTable` class.
        names: declare only these (table order); None = all.
        defaults: {name: default} replacing the table's defaults (e.g. one
            that depends on a parameter declared before).

    Returns:
        {name: value} from the node's parameter overrides (command line,
        YAML file, launch file) or the defaults, not validated yet.

    Raises:
        rclpy.exceptions.InvalidParameterTypeException: a statically typed
            parameter given a value of another type.
    """
    defaults = defaults or {}
    return {spec.name: node.declare_parameter(spec.name, defaults.get(spec.name, spec.default),
                                              descriptor(spec)).value
            for spec in table_specs(table).values() if names is None or spec.name in names}


def declare_config_parameters(node: Node, table: type = PipelineConfig,
                              names: Optional[Sequence[str]] = None) -> ParameterTable:
    """Declare a table's parameters on ``node`` and return their values as a config.

    Parameters not in ``names`` keep the table's defaults in the config.

    Raises:
        ValueError: a value that is not allowed (one line naming the
            parameter and the allowed values).
        rclpy.exceptions.InvalidParameterTypeException: see
            :func:`declare_table_parameters`.
    """
    return table.from_mapping(declare_table_parameters(node, table, names))


def validated_changes(config: ParameterTable, parameters: Iterable[Parameter]
                      ) -> Tuple[Optional[ParameterTable], SetParametersResult]:
    """Apply the parameters of an on-set-parameters callback to a config, whole or not at all.

    Parameters that are not in the config's table (rclpy's own, such as
    ``use_sim_time``) are passed over and left to rclpy.

    Returns:
        (the new validated config, success), or (None, a refusal whose
        reason names the parameter and its allowed values); ``config`` is
        unchanged either way.
    """
    specs = table_specs(type(config))  # others (use_sim_time) are rclpy's own
    changes = {name: value for name, value in parameter_changes(parameters).items()
               if name in specs}
    try:
        return config.validated(**changes), SetParametersResult(successful=True)
    except ValueError as e:
        return None, SetParametersResult(successful=False, reason=str(e))


def parameter_changes(parameters: Iterable[Parameter]) -> Dict[str, object]:
    """{name: value} of parameters being set (e.g. in an on-set-parameters callback)."""
    return {prm.name: prm.value for prm in parameters}
