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
"""The chessboard scene: board, hands holding it, a bar and distractors.

The board's object frame follows the object class YAML
(``keypoint_perception/objects/checkerboard.yaml``): origin at the centre of
the inner-corner grid, +x along the long side, +z into the board, print
facing -z.  World frame: the left camera's optical frame (metres).
"""

from __future__ import annotations

from typing import List

from keypoint_perception.core.scene_sampler import SceneSampler
import numpy as np

from . import textures
from .camera import rot_x, rot_y, rot_z
from .layout import add_bar, add_distractor, BuiltScene, centre_in_view, rigid_transform, \
    rotation_towards
from .world import World
from ..variables import BoardVariables, PlacementVariables


def preload_board_textures(world: World, sampler: SceneSampler) -> None:
    """Load every board print the sampler can ask for (phase x black level) into ``world``.

    About 12 ms each (PNG + ``loadTexture``); loading them up front keeps
    that cost out of the first samples (a short run or a benchmark would
    otherwise pay it in about one sample in two).  Texture ids differ
    from lazy loading, the pixels do not.
    """
    if 'checker_phase' not in sampler or 'board_black' not in sampler:
        return
    phase_var, black_var = sampler['checker_phase'], sampler['board_black']
    blacks = range(int(round(black_var.lo / 10.0)) * 10,
                   int(round(black_var.hi / 10.0)) * 10 + 1, 10)
    for phase in range(phase_var.bins):
        for black in blacks:
            world.board_texture(phase, black)


def frame_color(rng: np.random.Generator) -> list:
    """RGBA (4 floats in [0, 1]) of the board's backing plate: grey, wood, white or any."""
    k = rng.random()
    if k < 0.4:
        g = rng.uniform(0.05, 0.45)
        c = [g, g, g]
    elif k < 0.6:
        c = list(np.array([0.55, 0.4, 0.25]) * rng.uniform(0.5, 1.2))
    elif k < 0.8:
        g = rng.uniform(0.7, 1.0)
        c = [g, g, g]
    else:
        c = list(textures.random_color(rng) / 255.0)
    return [float(np.clip(x, 0, 1)) for x in c] + [1.0]


def add_hand(world: World, rng: np.random.Generator, T_board: np.ndarray, side: int,
             board: BoardVariables, half_y: float) -> List[int]:
    """Add a hand gripping the board's left (``side`` -1) or right (+1) edge.

    Palm behind the board, 1-4 digits in front reaching ``hand_overlap``
    onto it, a forearm going outwards, down and back.

    Returns:
        The body ids (hand, forearm).
    """
    s, margin, frame = board.square_size, board.margin, board.frame
    hand_scale = rng.uniform(0.85, 1.2)
    skin = textures.SKIN_TONES[int(rng.integers(0, len(textures.SKIN_TONES)))] / 255.0
    skin = list(np.clip(skin * rng.uniform(0.8, 1.1), 0, 1)) + [1.0]
    if rng.random() < 0.15:  # gloves
        skin = list(textures.random_color(rng) / 255.0) + [1.0]
    x_edge = side * (5 + margin + frame) * s
    y_hand = rng.uniform(-0.6, 0.6) * half_y
    thickness = board.thickness
    # palm (behind the board) + digits (in front), in a hand frame = board frame
    palm_he = np.array([0.04, 0.045, 0.014]) * hand_scale
    palm_centre = [x_edge + side * palm_he[0] * rng.uniform(-0.3, 0.8), y_hand,
                   thickness + palm_he[2] + 1e-3]
    parts = [('box', palm_he, rigid_transform(rot_z(rng.uniform(-0.3, 0.3)), palm_centre))]
    n_digits = int(rng.integers(1, 5))
    r = (0.011 if n_digits == 1 else 0.0085) * hand_scale
    ys = y_hand + (np.arange(n_digits) - (n_digits - 1) / 2) * 2.1 * r
    for y_digit in ys:
        reach = board.hand_overlap * rng.uniform(0.6, 1.0)
        x0, x1 = x_edge + side * 0.025 * hand_scale, x_edge - side * reach
        length = max(abs(x0 - x1) - 2 * r, 1e-3)
        R_digit = rot_z(rng.uniform(-0.25, 0.25)) @ rot_y(np.pi / 2)
        parts.append(('capsule', (r, length),
                      rigid_transform(R_digit, [(x0 + x1) / 2, y_digit, -(r + 1.5e-3)])))
    ids = [world.add_compound(T_board, parts, skin)]
    # forearm: outward and down (board frame), going back in depth
    a = rng.uniform(np.radians(10), np.radians(80))
    d = np.array([side * np.cos(a), np.sin(a), rng.uniform(0.1, 0.8)])
    length = rng.uniform(0.15, 0.3)
    radius = rng.uniform(0.028, 0.042) * hand_scale
    start = np.array(palm_centre) + side * np.array([palm_he[0], 0, 0])
    centre = start + d / np.linalg.norm(d) * (length / 2 + radius)
    sleeve = skin if rng.random() < 0.3 else list(textures.random_color(rng) / 255.0) + [1.0]
    tex = (world.object_tex[int(rng.integers(0, len(world.object_tex)))]
           if sleeve is not skin and rng.random() < 0.5 else None)
    ids.append(world.add_capsule(T_board @ rigid_transform(rotation_towards(d), centre), radius,
                                 length, sleeve, tex))
    return ids


def build_board_scene(world: World, rng: np.random.Generator, board: BoardVariables,
                      placement: PlacementVariables, K: np.ndarray, width: int, height: int,
                      template: np.ndarray, template_square: float) -> BuiltScene:
    """Add the chessboard, hands, bar and distractors of one sample to ``world``.

    Args:
        world: the PyBullet world (bodies are added; :meth:`World.clear` removes them).
        rng: the sample's generator.
        board: the sample's board variables.
        placement: where the board's centre lands in the left image.
        K: (3, 3) intrinsics of the left view (output camera), px.
        width: image width, px.
        height: image height, px.
        template: (J, 3) keypoints of the object class, m, for squares of
            ``template_square`` m (scaled to ``board.square_size``).
        template_square: square size of ``template``, m.

    Returns:
        The scene (labelled bodies: the print and its backing plate).
    """
    fx = K[0, 0]
    s = board.square_size
    margin, frame = board.margin, board.frame
    hx, hy = (5 + margin + frame) * s, (3.5 + margin + frame) * s
    R = rot_z(np.radians(board.roll)) @ rot_x(np.radians(board.tilt_x)) @ \
        rot_y(np.radians(board.tilt_y))
    Z = max(fx * 2 * hx / (board.board_width_frac * width), 0.15)
    corners = np.array([[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]]) @ R.T
    Z = max(Z, 0.12 - corners[:, 2].min())
    u_c, v_c = centre_in_view(corners + [0, 0, Z], K, width, height, placement)
    t = Z * np.linalg.solve(K, [u_c, v_c, 1.0])
    T_board = rigid_transform(R, t)

    black = int(round(board.board_black / 10.0) * 10)
    paper_rgba = list(np.clip(board.paper_brightness * rng.uniform(0.93, 1.0, 3), 0, 1)) + [1]
    frame_rgba = frame_color(rng)
    paper, backing = world.add_board(T_board, s, margin, board.thickness, frame,
                                     world.board_texture(board.checker_phase, black),
                                     paper_rgba, frame_rgba)
    occluders: List[int] = []
    if board.hands in (1, 3):
        occluders += add_hand(world, rng, T_board, -1, board, hy)
    if board.hands in (2, 3):
        occluders += add_hand(world, rng, T_board, +1, board, hy)
    if board.bar == 1:
        occluders.append(add_bar(world, rng, T_board, hx, hy))
    distractors = [add_distractor(world, rng, K, Z, width, height)
                   for _ in range(int(board.n_distractors))]
    keypoints = (template * (s / template_square)) @ R.T + t
    return BuiltScene(frozenset({paper, backing}), tuple(occluders), tuple(distractors),
                      keypoints, T_board, (u_c, v_c), Z, {'square_size': s})
