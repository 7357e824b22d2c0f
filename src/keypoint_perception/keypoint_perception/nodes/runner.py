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
"""The one ``main`` of every node of the workspace: init, build, spin, clean up."""

import sys
import traceback
from typing import Callable, List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

#: Exit status of a node that could not start (bad parameter, missing model...).
STARTUP_FAILED = 1


def _debug_logging(args: Optional[List[str]]) -> bool:
    """Whether the ROS arguments ask for debug logging (``--log-level [name:=]debug``)."""
    argv = list(sys.argv if args is None else args)
    return any(flag == '--log-level' and value.lower().split(':=')[-1] == 'debug'
               for flag, value in zip(argv, argv[1:]))


def run_node(node_factory: Callable[[], Node], args: Optional[List[str]] = None,
             name: Optional[str] = None) -> int:
    """Initialize rclpy, build the node, spin it until shutdown, then clean up.

    A node that fails to start (its factory raises: a parameter that is not
    allowed, a missing model file...) is reported as one line naming the
    node and the problem, without a traceback unless the ROS arguments set
    ``--log-level debug``; Ctrl-C and an external shutdown end the spin
    quietly.  The node is destroyed and rclpy shut down in every case.

    Args:
        node_factory: builds the node (e.g. the node class).
        args: command-line arguments for ``rclpy.init`` (None = ``sys.argv``).
        name: name used in the start-up error line (default: the factory's
            ``__name__``).

    Returns:
        0 after a normal shutdown, :data:`STARTUP_FAILED` when the node could
        not be built (for ``sys.exit``; console scripts exit with it).
    """
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = node_factory()
        except Exception as e:  # noqa: B902 - any start-up failure: one line, no traceback
            label = name or getattr(node_factory, '__name__', 'node')
            if _debug_logging(args):
                traceback.print_exc()
            print(f'{label}: cannot start: {e}', file=sys.stderr, flush=True)
            return STARTUP_FAILED
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: B902 - see below
        if rclpy.ok():
            raise
        # a callback that raced Ctrl-C's shutdown (RCLError: the context is not valid
        # any more): the spin ended because of the shutdown, not of the error
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
