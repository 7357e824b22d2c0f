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
"""What every command-line tool of the workspace shares (no ROS).

A tool's ``main`` is wrapped by :func:`command_line`; it builds its options
with :class:`ArgumentParser` and checks each input it reads inside
:func:`checked_input`.  Then every bad input (a YAML file that does not
parse, an unknown object class, a corrupt checkpoint, an empty dataset
folder, a size that is not positive) ends the tool with ONE line on stderr
that names the input and what is wrong with it, and a non-zero exit status::

    keypoints-train: error: --data /tmp/empty: no shards (shard-*.tar) in the folder

``--debug`` (or ``KEYPOINTS_DEBUG=1`` in the environment) shows the full
traceback instead.  Exit status: 2 for bad input (as argparse uses), 1 for
any other failure, 130 when interrupted.
"""

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

#: Exit status of a tool stopped by bad input (argparse's usage-error status).
EXIT_BAD_INPUT = 2
#: Exit status of a tool stopped by any other error.
EXIT_FAILURE = 1
#: Exit status of a tool stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Exit status of a tool stopped by SIGTERM (128 + SIGTERM).
EXIT_TERMINATED = 143
#: Exit status of a tool whose output is complete but names inputs it could not
#: use (e.g. unreadable images, each with an ``error`` record).
EXIT_PARTIAL = 3


class InputError(Exception):
    """A user-given input is unusable; the message names the input and what is wrong."""


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (YAML and torch errors span several lines)."""
    text = ' '.join(str(error).split())
    if isinstance(error, KeyError):  # str(KeyError('x')) is "'x'"
        text = f'missing key {text}'
    return text or type(error).__name__


@contextlib.contextmanager
def checked_input(what: str) -> Iterator[None]:
    """Turn any error raised while reading one input into an :class:`InputError`.

    Args:
        what: the input as the user gave it, e.g. ``'--left-info cam.yaml'``;
            it starts the message (``'--left-info cam.yaml: not valid YAML ...'``).

    Raises:
        InputError: from any ``Exception`` raised in the ``with`` block (the
            original is chained as its ``__cause__``).
    """
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        raise InputError(f'{what}: {one_line(e)}') from e


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``--debug`` and one-line usage errors.

    A usage error (unknown option, a value of the wrong type, a missing
    required option) prints ``prog: error: message (see prog --help)`` and
    exits with status 2, without the usage block.
    """

    def __init__(self, *args, **kwargs):
        """Construct as ``argparse.ArgumentParser``; adds the ``--debug`` flag."""
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='show the full traceback of an error')

    def error(self, message: str):
        """Print one line naming the problem and exit with status 2."""
        self.exit(EXIT_BAD_INPUT,
                  f'{self.prog}: error: {" ".join(message.split())} (see {self.prog} --help)\n')


def positive_int(text: str) -> int:
    """Argparse type: an integer > 0.

    Raises:
        argparse.ArgumentTypeError: otherwise (argparse reports the option).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {value}')
    return value


def non_negative_int(text: str) -> int:
    """Argparse type: an integer >= 0.

    Raises:
        argparse.ArgumentTypeError: otherwise.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if value != value or value in (float('inf'), float('-inf')):
        raise argparse.ArgumentTypeError(f'must be finite, got {text}')
    return value


def positive_float(text: str) -> float:
    """Argparse type: a finite number > 0.

    Raises:
        argparse.ArgumentTypeError: otherwise.
    """
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def non_negative_float(text: str) -> float:
    """Argparse type: a finite number >= 0.

    Raises:
        argparse.ArgumentTypeError: otherwise.
    """
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {text}')
    return value


def unit_interval(text: str) -> float:
    """Argparse type: a number in [0, 1].

    Raises:
        argparse.ArgumentTypeError: otherwise.
    """
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {text}')
    return value


def _debug_requested(argv: Sequence[str]) -> bool:
    return '--debug' in argv or os.environ.get('KEYPOINTS_DEBUG', '') not in ('', '0')


def command_line(prog: str) -> Callable:
    """Decorate a tool's ``main(argv=None) -> Optional[int]`` for console scripts.

    The wrapped ``main`` returns an exit status instead of raising: the
    function's own return value (None = 0), :data:`EXIT_BAD_INPUT` after an
    :class:`InputError`, :data:`EXIT_FAILURE` after any other exception and
    :data:`EXIT_INTERRUPTED` after Ctrl-C, each error reported as one line
    ``prog: error: ...`` on stderr.  SIGTERM ends the tool as
    ``SystemExit(EXIT_TERMINATED)`` raised where it runs, so that ``finally``
    blocks and context managers clean up (e.g. temporary output files).
    With ``--debug`` in the arguments (or ``KEYPOINTS_DEBUG=1``) exceptions
    propagate with their traceback.  ``SystemExit`` (argparse's ``--help``
    and usage errors) passes through.

    Args:
        prog: the tool's command name, e.g. ``'keypoints-train'``.
    """
    def decorate(main: Callable) -> Callable:
        @functools.wraps(main)
        def wrapped(argv: Optional[Sequence[str]] = None) -> int:
            args = list(sys.argv[1:] if argv is None else argv)
            with sigterm_as_exit():
                return _run(main, args)

        def _run(main: Callable, args: list) -> int:
            if _debug_requested(args):
                code = main(args)
                return 0 if code is None else int(code)
            try:
                code = main(args)
            except KeyboardInterrupt:
                print(f'{prog}: interrupted', file=sys.stderr)
                return EXIT_INTERRUPTED
            except InputError as e:
                print(f'{prog}: error: {one_line(e)}', file=sys.stderr)
                return EXIT_BAD_INPUT
            except Exception as e:
                print(f'{prog}: error: {type(e).__name__}: {one_line(e)} '
                      f'(run with --debug for the traceback)', file=sys.stderr)
                return EXIT_FAILURE
            return 0 if code is None else int(code)
        return wrapped
    return decorate


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(EXIT_TERMINATED)`` while the block runs.

    The exception is raised where the main thread runs, so that ``finally``
    blocks stop child processes and remove temporary files, as after Ctrl-C.
    Outside the main thread (where Python cannot set signal handlers) the
    block runs unchanged.  The previous handler is restored after it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(EXIT_TERMINATED)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def repo_root() -> str:
    """Workspace root: $KEYPOINTS_ROOT, else the first parent of cwd with ``src/``.

    The tools' default inputs (``data/opencv_stereo``, ``config/camera_info``)
    and outputs (``output/``) are relative to it; the current directory when
    no parent holds ``src/keypoint_perception``.
    """
    env = os.environ.get('KEYPOINTS_ROOT')
    if env:
        return env
    d = os.getcwd()
    while d != os.path.dirname(d):
        if os.path.isdir(os.path.join(d, 'src', 'keypoint_perception')):
            return d
        d = os.path.dirname(d)
    return os.getcwd()
