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
"""One randomized stereo sample: scene assembly, rendering, labels, imaging.

Frames: the world frame is the LEFT camera optical frame (+x right, +y
down, +z forward, metres).  The board's object frame follows the object
class YAML (origin at the centre of the inner-corner grid, +x along the
long side, +z into the board, print facing -z).

Two scenes share the rig, placement, lighting, rendering, labels and
imaging: the chessboard (``scene: checkerboard``, the default) and URDF
objects (``scene: urdf``: sources, joints and keypoint links from the config
and the object-class YAML, see :mod:`sim_datagen.scene.urdf_object`).

Randomness: every scene-level variable is drawn through the
:class:`~sim_datagen.randomization.SceneSampler` (value and bin recorded in
the labels).  Per-instance details whose number varies (each distractor's
position, the shapes drawn into a procedural background, a finger's exact
length) come from the same per-sample generator, seeded from
``(seed, index)`` only, so a sample does not depend on the worker layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import itertools
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import yaml

from .randomization import SceneSampler
from .scene import textures as tx
from .scene.camera import StereoRig, rot_x, rot_y, rot_z
from .scene.urdf_object import (class_anchors, ConfigError, parse_sources, UrdfInstance,
                                write_procedural)
from .scene.world import World

# instance ids of the optional segmentation output
SEG_BACKGROUND, SEG_BOARD, SEG_OCCLUDER, SEG_DISTRACTOR = 0, 1, 2, 3
#: id of a support plane drawn by the generator in a render's segmentation (no body)
SEG_SUPPORT_ID = 1 << 30


def find_object_yaml(name: str) -> str:
    """Find ``keypoint_perception/objects/<name>.yaml``.

    Looks in the installed package, the ament share directory and this
    source tree, in that order.
    """
    cands = []
    try:
        import keypoint_perception
        for d in list(getattr(keypoint_perception, '__path__', [])):
            cands.append(os.path.join(d, 'objects', f'{name}.yaml'))
    except ImportError:
        pass
    try:
        from ament_index_python.packages import get_package_share_directory
        share = get_package_share_directory('keypoint_perception')
        cands += [os.path.join(share, 'objects', f'{name}.yaml'),
                  os.path.join(share, 'config', 'objects', f'{name}.yaml')]
    except Exception:  # noqa: B902 - not installed / no ament index
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, '..', '..', 'keypoint_perception', 'keypoint_perception',
                              'objects', f'{name}.yaml'))
    for c in cands:
        if os.path.isfile(c):
            return os.path.normpath(c)
    raise FileNotFoundError(f'object class {name!r} not found in {cands}')


def resolve_config(path: str) -> str:
    """Resolve ``path`` or a bare config name (``checkerboard``) to a file.

    Bare names are looked up in this package's ``config/`` folder (source
    tree) and in its ament share directory.
    """
    if os.path.isfile(path):
        return path
    name = path if path.endswith('.yaml') else path + '.yaml'
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.path.join(here, '..', 'config', name)]
    try:
        from ament_index_python.packages import get_package_share_directory
        cands.append(os.path.join(get_package_share_directory('sim_datagen'), 'config', name))
    except Exception:  # noqa: B902 - not installed / no ament index
        pass
    for c in cands:
        if os.path.isfile(c):
            return os.path.normpath(c)
    raise FileNotFoundError(f'config {path!r} not found (tried {cands})')


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` into a copy of ``base``.

    Mappings merge recursively (base keys keep their order, new keys are
    appended), other values replace, ``None`` deletes the key.
    """
    out = dict(base)
    for k, val in over.items():
        if val is None:
            out.pop(k, None)
        elif isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], val)
        else:
            out[k] = val
    return out


def _read_config(path: str, seen=()) -> dict:
    """Parse a config YAML, following ``extends`` (a path relative to the file)."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    ext = cfg.pop('extends', None)
    if ext is None:
        return cfg
    if not isinstance(ext, str):
        raise ConfigError(f'{path}: extends: expected a file name, got {ext!r}')
    base_path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), ext))
    if base_path in seen or not os.path.isfile(base_path):
        raise ConfigError(f'{path}: extends: {base_path!r} is missing or circular')
    return _merge(_read_config(base_path, seen + (base_path,)), cfg)


def load_config(path: str) -> dict:
    """Read a generator config YAML and the object class YAML it names.

    ``path`` may also be a bare name, see :func:`resolve_config`.  A config
    may name a base config with ``extends: <file>`` (relative to its own
    folder); the two are deep-merged (see :func:`_merge`: ``variables``
    of the base come first, in their order; ``name: null`` removes one).

    Returns:
        The config dict with ``object_def`` (the parsed object YAML),
        ``object_yaml`` (its path) and ``config_file`` (the resolved
        config path) filled in.

    Raises:
        FileNotFoundError: config or object class not found.
        ConfigError: malformed YAML structure (message names the file).
    """
    cfg_path = resolve_config(path)
    cfg = _read_config(cfg_path)
    obj_path = cfg.get('object_yaml') or find_object_yaml(cfg.get('object', 'checkerboard'))
    with open(obj_path) as f:
        cfg['object_def'] = yaml.safe_load(f)
    od = cfg['object_def']
    if not isinstance(od, dict) or not isinstance(od.get('keypoints'), list) or not all(
            isinstance(k, dict) and 'name' in k for k in od['keypoints']):
        raise ConfigError(f'{obj_path}: keypoints: expected a list of {{name: ..}} entries')
    if not isinstance(cfg.get('variables'), dict):
        raise ConfigError(f'{cfg_path}: variables: expected a mapping')
    cfg['object_yaml'] = obj_path
    cfg['config_file'] = os.path.abspath(cfg_path)
    return cfg


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """Return the generator of sample ``index`` of a run (worker independent)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _T(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def _rot_to(d: np.ndarray) -> np.ndarray:
    """Rotation whose z axis points along ``d``."""
    z = d / np.linalg.norm(d)
    a = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(a, z)
    x /= np.linalg.norm(x)
    return np.c_[x, np.cross(z, x), z]


def distort_points(uv: np.ndarray, K: np.ndarray, D) -> np.ndarray:
    """Apply plumb_bob radial distortion (k1, k2) to (N, 2) pinhole pixels."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y = (uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy
    r2 = x * x + y * y
    f = 1 + D[0] * r2 + D[1] * r2 * r2
    return np.c_[x * f * fx + cx, y * f * fy + cy]


def undistort_normalized(uv: np.ndarray, K: np.ndarray, D) -> np.ndarray:
    """Invert radial plumb_bob (k1, k2) distortion.

    Maps (N, 2) distorted pixels to (N, 2) undistorted normalized
    coordinates by Newton iteration on the radius (the radial polynomial is
    monotonic for the coefficients this package samples).
    """
    k1, k2 = float(D[0]), float(D[1])
    xd = (uv[:, 0] - K[0, 2]) / K[0, 0]
    yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
    rd = np.hypot(xd, yd)
    ru = rd.copy()
    for _ in range(50):
        r2 = ru * ru
        f = ru * (1 + r2 * (k1 + k2 * r2)) - rd
        df = 1 + r2 * (3 * k1 + 5 * k2 * r2)
        ru = np.maximum(ru - f / np.maximum(df, 1e-6), 0.0)
        if np.abs(f).max() < 1e-13:
            break
    scale = np.where(rd > 1e-12, ru / np.maximum(rd, 1e-12), 1.0)
    return np.c_[xd * scale, yd * scale]


def render_intrinsics(K: np.ndarray, D, w: int, h: int) -> np.ndarray:
    """Pinhole intrinsics for rendering an image that is then distorted with ``D``.

    Barrel distortion (k1 < 0) makes the distorted image see a wider field of
    view than the pinhole ``K``; the render uses ``K_r`` = ``K`` with the focal
    lengths scaled down so that every distorted pixel maps inside the render.
    """
    pts = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [(w - 1) / 2, 0],
                    [(w - 1) / 2, h - 1], [0, (h - 1) / 2], [w - 1, (h - 1) / 2]], np.float64)
    xu = undistort_normalized(pts, K, D)
    sc = 1.0
    for i, (f, c, size) in enumerate(((K[0, 0], K[0, 2], w), (K[1, 1], K[1, 2], h))):
        for x in xu[:, i]:
            if x > 1e-9:
                sc = min(sc, (size - 1 - c) / (f * x))
            elif x < -1e-9:
                sc = min(sc, -c / (f * x))
    Kr = K.copy()
    Kr[0, 0] *= 0.995 * sc
    Kr[1, 1] *= 0.995 * sc
    return Kr


def distortion_maps(K: np.ndarray, D, w: int, h: int, K_src: Optional[np.ndarray] = None,
                    step: int = 4):
    """``cv2.remap`` maps that turn a pinhole render into the distorted image.

    For each distorted output pixel (camera ``K``, plumb_bob ``D`` = k1, k2)
    the source pixel of the pinhole render with intrinsics ``K_src``
    (default ``K``) is found with :func:`undistort_normalized` on a coarse grid
    (every ``step`` px) and interpolated bilinearly (the mapping is smooth).

    Returns:
        (map_x, map_y), each (h, w) float32.
    """
    K_src = K if K_src is None else K_src
    # grid nodes i = -1 .. n sit at pixel (i + 0.5) * step - 0.5, which is exactly
    # where cv2.resize(fx=step) puts them, so the upsampled map needs no shift
    gx = (np.arange(-1, w // step + 2) + 0.5) * step - 0.5
    gy = (np.arange(-1, h // step + 2) + 0.5) * step - 0.5
    xx, yy = np.meshgrid(gx, gy)
    xu = undistort_normalized(np.stack([xx.ravel(), yy.ravel()], 1), K, D)
    und = (xu * [K_src[0, 0], K_src[1, 1]] + [K_src[0, 2], K_src[1, 2]])
    und = und.reshape(len(gy), len(gx), 2).astype(np.float32)
    big = cv2.resize(und, None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR)
    big = big[step:step + h, step:step + w]
    mx, my = np.ascontiguousarray(big[:, :, 0]), np.ascontiguousarray(big[:, :, 1])
    return mx, my


def _clip_polygon(poly: np.ndarray, a: np.ndarray, d: float) -> np.ndarray:
    """Clip a convex polygon ((N, 3) vertices in order) to the half-space ``a . p + d >= 0``."""
    s = poly @ a + d
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if s[i] >= 0:
            out.append(poly[i])
        if (s[i] >= 0) != (s[j] >= 0):
            out.append(poly[i] + (poly[j] - poly[i]) * (s[i] / (s[i] - s[j])))
    return np.array(out).reshape(-1, 3)


def keypoint_visibility(uv: np.ndarray, z: np.ndarray, seg: np.ndarray, board_ids,
                        depth: Optional[np.ndarray] = None, depth_tolerance=None
                        ) -> np.ndarray:
    """COCO visibility per keypoint, decided from the rendered segmentation (and depth).

    Args:
        uv: (J, 2) pixel coordinates of the keypoints in this view (pinhole).
        z: (J,) keypoint depth in this camera's optical frame, m.
        seg: (H, W) int segmentation of this view (PyBullet body unique ids,
            -1 where nothing was drawn).
        board_ids: body ids that belong to the object (board print + backing).
        depth: optional (H, W) rendered optical depth of this view, m.
        depth_tolerance: with ``depth``: (J,) or scalar, m; how far the
            object's own surface may lie in front of the keypoint (a joint
            origin inside a robot link, a point on a surface) and still
            count as visible.

    Returns:
        (J,) int64: 0 outside the image (pixel centre range ``[-0.5, W-0.5)``)
        or behind the camera, 1 occluded, 2 visible.  Without ``depth``:
        2 iff the object itself is rendered at the keypoint's (nearest)
        pixel.  With ``depth``: 2 iff nothing is rendered there, or the
        rendered surface is not in front of the keypoint (an object surface
        may be ``depth_tolerance`` in front, another body not at all).
    """
    H, W = seg.shape
    uv = np.asarray(uv, dtype=np.float64)
    vis = np.zeros(len(uv), np.int64)
    ok = ((uv[:, 0] >= -0.5) & (uv[:, 0] < W - 0.5) & (uv[:, 1] >= -0.5)
          & (uv[:, 1] < H - 0.5) & np.all(np.isfinite(uv), axis=1) & (np.asarray(z) > 0))
    tol = None if depth is None else np.broadcast_to(
        np.asarray(depth_tolerance, np.float64), (len(uv),))
    for j in np.nonzero(ok)[0]:
        c = int(np.clip(np.rint(uv[j, 0]), 0, W - 1))
        r = int(np.clip(np.rint(uv[j, 1]), 0, H - 1))
        own = int(seg[r, c]) in board_ids
        if depth is None:
            vis[j] = 2 if own else 1
        elif seg[r, c] < 0:
            vis[j] = 2
        else:
            vis[j] = 2 if depth[r, c] >= z[j] - (tol[j] if own else 1e-3) else 1
    return vis


@dataclass
class _Scene:
    """The bodies and labels of one sample's scene (world = left optical frame).

    Attributes:
        object_ids: body ids of the labelled object.
        occ_ids: occluder body ids (hands, bars).
        dis_ids: distractor body ids.
        kp3d: (J, 3) keypoints, m.
        pose: (4, 4) object frame in the left optical frame.
        u_c, v_c: pixel of the object's reference point (left, pinhole).
        z: its depth, m.
        extra_labels: class-specific label entries.
        depth_tolerance: (J,) m for the depth visibility test, or None for
            the segmentation-only test.
        instance: the URDF instance (URDF classes).
        support: ``(T_top, half, rgba, texture id)`` of a support plane that
            is drawn into the renders (:meth:`SampleGenerator._draw_support`),
            not rendered by PyBullet.
    """

    object_ids: set
    occ_ids: List[int]
    dis_ids: List[int]
    kp3d: np.ndarray
    pose: np.ndarray
    u_c: float
    v_c: float
    z: float
    extra_labels: dict = field(default_factory=dict)
    depth_tolerance: Optional[np.ndarray] = None
    instance: Optional[UrdfInstance] = None
    support: Optional[tuple] = None


class _Stopwatch:
    """Per-stage wall-clock and CPU (process) time, seconds."""

    def __init__(self):
        self.wall, self.cpu = {}, {}
        self._t = (time.perf_counter(), time.process_time())

    def lap(self, name: str):
        t = (time.perf_counter(), time.process_time())
        self.wall[name] = self.wall.get(name, 0.0) + t[0] - self._t[0]
        self.cpu[name] = self.cpu.get(name, 0.0) + t[1] - self._t[1]
        self._t = t


class SampleGenerator:
    """Builds, renders and labels randomized stereo samples.

    Args:
        cfg: config from :func:`load_config`.
        sampler: the scene sampler (``None``: built from ``cfg['variables']``).
        world: an existing :class:`World` (``None``: one is created; one
            PyBullet client per process).
    """

    def __init__(self, cfg: dict, sampler: Optional[SceneSampler] = None,
                 world: Optional[World] = None):
        self.cfg = cfg
        self.sampler = sampler or SceneSampler.from_config(cfg['variables'])
        self.W = int(cfg['image']['width'])
        self.H = int(cfg['image']['height'])
        wc = cfg.get('world', {})
        self.lib = (tx.TextureLibrary.from_pybullet_data()
                    if wc.get('use_pybullet_data_textures', True) else tx.TextureLibrary([]))
        self.world = world or World(n_object_textures=int(wc.get('n_object_textures', 24)),
                                    n_meshes=int(wc.get('n_meshes', 12)),
                                    texture_files=self.lib.files[:8],
                                    reset_every=int(wc.get('reset_every', 250)))
        self.pad = int(wc.get('background_pad', 200))
        #: draw a shadowless support plane with numpy instead of TinyRenderer
        self.raycast_support = bool(wc.get('raycast_support', True))
        #: with ``raycast_support``: also a support plane that receives shadows (own shadow map)
        self.raycast_shadow = bool(wc.get('raycast_shadow', True))
        #: pixels (square) of that shadow map
        self.shadow_map_px = int(wc.get('shadow_map_px', 256))
        od = cfg['object_def']
        self.object_name = od.get('name', 'checkerboard')
        self.kp_names = [k['name'] for k in od['keypoints']]
        self.kp_template = np.array([k.get('position', [np.nan] * 3) for k in od['keypoints']],
                                    dtype=np.float64)
        self.template_square = float(od.get('square_size', 0.025))
        self.skeleton = od.get('skeleton', [])
        self.near = float(cfg.get('near', 0.02))
        self.far = float(cfg.get('far', 20.0))
        self.frames = cfg.get('frame_ids', {'left': 'left_camera_optical_frame',
                                            'right': 'right_camera_optical_frame'})
        self.outputs = cfg.get('outputs', {})
        cv2.setNumThreads(1)  # one core per worker process
        self.sources = []
        if cfg.get('scene', 'checkerboard') == 'urdf':
            self._init_urdf(cfg)
        elif cfg.get('scene', 'checkerboard') != 'checkerboard':
            raise ConfigError(f"{cfg.get('config_file', 'config')}: scene: expected "
                              f"checkerboard or urdf, got {cfg['scene']!r}")
        else:
            self._preload_board_textures()

    def _preload_board_textures(self):
        """Load every board print the sampler can ask for (phase x black level).

        About 12 ms each (PNG + ``loadTexture``); loading them up front keeps
        that cost out of the first samples (a short run or a benchmark would
        otherwise pay it in about one sample in two).  Texture ids differ
        from lazy loading, the pixels do not.
        """
        if 'checker_phase' not in self.sampler or 'board_black' not in self.sampler:
            return
        ph, bb = self.sampler['checker_phase'], self.sampler['board_black']
        blacks = range(int(round(bb.lo / 10.0)) * 10, int(round(bb.hi / 10.0)) * 10 + 1, 10)
        for phase in range(ph.bins):
            for black in blacks:
                self.world.board_texture(phase, black)

    def _init_urdf(self, cfg: dict):
        """Validate a URDF class: sources, keypoint links, joints, tolerances.

        Every source is loaded once (procedural ones with their default
        parameters) so that a wrong link or joint name fails here, naming
        the config and object files.
        """
        where = cfg.get('config_file', 'config')
        self.sources = parse_sources(cfg, where)
        self.anchors = class_anchors(cfg['object_def'], cfg['object_yaml'])
        vc = cfg.get('visibility', {}) or {}
        tol = vc.get('depth_tolerance', 0.01)
        per = vc.get('keypoints', {}) or {}
        bad = sorted(set(per) - set(self.kp_names))
        if bad or not isinstance(tol, (int, float)):
            raise ConfigError(f'{where}: visibility: unknown keypoint(s) {bad} or a '
                              f'depth_tolerance that is not a number')
        self.kp_tol = np.array([float(per.get(n, tol)) for n in self.kp_names])
        self._proc_count = itertools.count()
        #: {source name: URDF that is rendered}: a decimated copy when visual_decimation
        self._render_urdf = {}
        for src in self.sources:
            if src.kind == 'file' and src.visual_decimation > 0:
                from .scene.decimate import decimated_urdf
                self._render_urdf[src.name] = decimated_urdf(src.target, src.visual_decimation)
        for src in self.sources:
            anchors = self._source_anchors(src)
            if src.kind == 'procedural':
                path = write_procedural(src, None, self.world.tmp, f'check_{src.name}')
                body = self.world.load_urdf(path)
            else:
                body = self.world.load_urdf(self._render_urdf.get(src.name, src.target), 1.0,
                                            cached=src.cacheable and src.scale == 1.0)
            inst = UrdfInstance(body, self.world.cid)
            links = [a[0] for a in anchors if a[0] is not None]
            missing = sorted(set(links) - set(inst.links))
            if missing:
                raise ConfigError(f'{where} / {cfg["object_yaml"]}: source {src.name!r}: '
                                  f'link(s) {missing} not in the URDF; links: '
                                  f'{sorted(inst.links)}')
            try:
                inst.set_joints({n: 0.0 for n in src.joints})
            except KeyError as e:
                raise ConfigError(f'{where}: source {src.name!r}: joints: {e}') from None
        self.world.clear()

    def _source_anchors(self, src) -> list:
        """``(link, position)`` per keypoint for a source (class YAML + overrides)."""
        return [src.keypoints.get(n, (link, pos)) for n, link, pos in self.anchors]

    # ------------------------------------------------------------------
    def generate(self, index: int, seed: int, overrides: Optional[Dict[str, float]] = None,
                 scene_hook: Optional[Callable[['_Scene'], None]] = None) -> dict:
        """Make sample ``index`` of run ``seed``.

        Args:
            index: sample index.
            seed: run seed; the sample is a function of ``(seed, index)``.
            overrides: fixes scene variables ``{name: value}`` after sampling
                (their bin is recomputed; used by tests and for debugging).
            scene_hook: called with the built :class:`_Scene` right before
                rendering (tests add bodies, e.g. an occluder, through it).

        Returns:
            dict with ``key`` (str), ``left``/``right`` (H, W, 3) uint8 RGB,
            ``labels`` (JSON-ready dict, see the package README), optional
            ``depth`` (H, W) uint16 mm and ``seg`` (H, W) uint8 of the left
            view, and ``timing`` / ``cpu_timing`` (seconds per stage).
        """
        sw = _Stopwatch()
        rng = sample_rng(seed, index)
        draws = self.sampler.sample(rng)
        for k, val in (overrides or {}).items():
            draws[k] = (val, self.sampler[k].bin_of(val))
        v = {k: val for k, (val, _) in draws.items()}

        K, D, K_r, rig, rig_r = self._rig(rng, v)
        sc = (self._urdf_scene(rng, v, K, K_r) if self.sources
              else self._board_scene(rng, v, K))
        light = self._light(rng, v)
        if scene_hook is not None:
            scene_hook(sc)
        sw.lap('scene')

        # --- render -----------------------------------------------------------
        world = self.world
        cams = {'left': rig.left, 'right': rig.right}
        rcams = {'left': rig_r.left, 'right': rig_r.right}
        if sc.support is not None and light['shadow'] and not self._lit_side(sc.support, light):
            # light below the plane: the plane shadows the object, let TinyRenderer do it
            self._add_support(*sc.support, K_r, v['baseline'])
            sc.support = None
        renders = {n: world.render(cam, light) for n, cam in rcams.items()}
        if sc.support is not None:
            smap = self._shadow_map(sc, light) if light['shadow'] else None
            renders = {n: self._draw_support(r, rcams[n], sc.support, light, smap)
                       for n, r in renders.items()}
        sw.lap('render')
        world.clear()  # removing the sample's bodies is scene work
        sw.lap('scene')

        # --- labels -----------------------------------------------------------
        kp3d = sc.kp3d
        kp2d, vis = {}, {}
        for n, cam in cams.items():
            uv_r = rcams[n].project(kp3d)  # pixel in the (pinhole) render
            z = cam.to_camera(kp3d)[:, 2]
            if sc.depth_tolerance is None:
                vis[n] = keypoint_visibility(uv_r, z, renders[n][2], sc.object_ids)
            else:
                vis[n] = keypoint_visibility(uv_r, z, renders[n][2], sc.object_ids,
                                             rcams[n].linear_depth(renders[n][1]),
                                             sc.depth_tolerance)
            if D is None:
                kp2d[n] = uv_r
            else:  # label = distorted projection; in/out decided in the distorted image
                kp2d[n] = distort_points(cam.project(kp3d), K, D)
                vis[n][~self._inside(kp2d[n])] = 0
        sw.lap('label')

        # --- imaging ------------------------------------------------------------
        images = self._compose(rng, v, K, K_r, renders, sc.u_c, sc.v_c, sc.z, D)
        sw.lap('imaging')

        labels = {
            'object_class': self.object_name,
            'keypoint_names': self.kp_names,
            'keypoints_2d': {n: kp2d[n].tolist() for n in cams},
            'visibility': {n: vis[n].tolist() for n in cams},
            'keypoints_3d': kp3d.tolist(),
            'object_pose': sc.pose.tolist(),
            **sc.extra_labels,
            'camera_info': rig.camera_infos(self.frames['left'], self.frames['right'], D),
            'baseline': rig.baseline,
            'variables': {k: {'value': val, 'bin': b} for k, (val, b) in draws.items()},
            'seed': int(seed), 'index': int(index),
        }
        out = {'key': f'{index:09d}', 'left': images['left'], 'right': images['right'],
               'labels': labels, 'timing': sw.wall, 'cpu_timing': sw.cpu}
        if self.outputs.get('depth'):
            depth = rig_r.left.linear_depth(renders['left'][1])
            dmm = np.where(renders['left'][2] >= 0, np.round(depth * 1000), 0)
            out['depth'] = self._remap(np.clip(dmm, 0, 65535).astype(np.uint16), K, K_r, D)
        if self.outputs.get('segmentation'):
            segm = renders['left'][2]
            seg = np.zeros(segm.shape, np.uint8)
            seg[np.isin(segm, list(sc.object_ids))] = SEG_BOARD
            seg[np.isin(segm, sc.occ_ids)] = SEG_OCCLUDER
            seg[np.isin(segm, sc.dis_ids)] = SEG_DISTRACTOR
            out['seg'] = self._remap(seg, K, K_r, D)
        sw.lap('label')  # depth / segmentation outputs (same dicts as out['timing'])
        return out

    def _rig(self, rng, v):
        """Stereo rig of a sample: K, D (None or [k1, k2]), render K_r, rig, render rig."""
        W, H = self.W, self.H
        fx = v['fx']
        K = np.array([[fx, 0, (W - 1) / 2 + v['cx_offset']],
                      [0, fx * v['aspect'], (H - 1) / 2 + v['cy_offset']],
                      [0, 0, 1]])
        rig = StereoRig(K, W, H, v['baseline'], self.near, self.far)
        D = None
        if v['distortion'] == 1:  # plumb_bob k1, k2; k2 keeps r_d(r_u) monotonic
            k1 = v['k1']
            D = [k1, max(rng.uniform(-0.05, 0.12), 0.45 * k1 * k1 + 0.01)]
        # pinhole rig that is rendered (wider field of view when D distorts)
        K_r = K if D is None else render_intrinsics(K, D, W, H)
        rig_r = rig if D is None else StereoRig(K_r, W, H, v['baseline'], self.near, self.far)
        return K, D, K_r, rig, rig_r

    def _centre_in_view(self, c: np.ndarray, K: np.ndarray, v) -> Tuple[float, float]:
        """Image position (u, v) of the object's reference point, from center_x/y.

        ``c``: (N, 3) object extreme points in camera orientation with the
        reference point at (0, 0, Z).  The range of positions keeps the
        points 2 px inside the image (35 % of the object's extent beyond it
        when ``out_of_view``); ``center_x/y`` in [-1, 1] pick within it.
        """
        du = K[0, 0] * c[:, 0] / c[:, 2]
        dv = K[1, 1] * c[:, 1] / c[:, 2]
        centre = []
        for d, size, val in ((du, self.W, v['center_x']), (dv, self.H, v['center_y'])):
            lo, hi = -d.min() + 2, size - 1 - d.max() - 2
            if v['out_of_view'] == 1:
                ext = 0.35 * (d.max() - d.min())
                lo, hi = lo - ext, hi + ext
            if hi < lo:
                lo = hi = 0.5 * (lo + hi)
            centre.append(lo + (val + 1) / 2 * (hi - lo))
        return centre[0], centre[1]

    def _board_scene(self, rng, v, K) -> '_Scene':
        """Chessboard, hands, bar and distractors for one sample."""
        W = self.W
        fx = v['fx']
        s = v['square_size']
        margin, frame = v['margin'], v['frame']
        hx, hy = (5 + margin + frame) * s, (3.5 + margin + frame) * s
        R = rot_z(np.radians(v['roll'])) @ rot_x(np.radians(v['tilt_x'])) @ \
            rot_y(np.radians(v['tilt_y']))
        Z = max(fx * 2 * hx / (v['board_width_frac'] * W), 0.15)
        corners = np.array([[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]]) @ R.T
        Z = max(Z, 0.12 - corners[:, 2].min())
        u_c, v_c = self._centre_in_view(corners + [0, 0, Z], K, v)
        t = Z * np.linalg.solve(K, [u_c, v_c, 1.0])
        T_board = _T(R, t)

        world = self.world
        black = int(round(v['board_black'] / 10.0) * 10)
        paper_rgba = list(np.clip(v['paper_brightness'] * rng.uniform(0.93, 1.0, 3), 0, 1)) + [1]
        frame_rgba = self._frame_color(rng)
        paper, backing = world.add_board(T_board, s, margin, v['thickness'], frame,
                                         world.board_texture(v['checker_phase'], black),
                                         paper_rgba, frame_rgba)
        occ_ids: List[int] = []
        hands = v['hands']
        if hands in (1, 3):
            occ_ids += self._add_hand(rng, T_board, -1, s, margin, frame, hy, v)
        if hands in (2, 3):
            occ_ids += self._add_hand(rng, T_board, +1, s, margin, frame, hy, v)
        if v['bar'] == 1:
            occ_ids.append(self._add_bar(rng, T_board, hx, hy))
        dis_ids = [self._add_distractor(rng, K, Z) for _ in range(int(v['n_distractors']))]
        kp3d = (self.kp_template * (s / self.template_square)) @ R.T + t
        return _Scene({paper, backing}, occ_ids, dis_ids, kp3d, T_board, u_c, v_c, Z,
                      {'square_size': s})

    def _urdf_scene(self, rng, v, K, K_r=None) -> '_Scene':
        """Build a URDF object's scene (source, joints, colours, view, occluders).

        The object's collision bounding box (object frame, after setting the
        joints) is seen from ``view_azimuth`` (deg about the object's +z,
        0 = from +x) and ``view_elevation`` (deg above its xy plane), rolled
        by ``view_roll``; ``object_size_frac`` is the larger of its image
        width / W and height / H; ``center_x/y`` and ``out_of_view`` place it
        as the board.  Optional: a support plane under it (``support``), a
        bar in front (``bar``), distractors, recolouring (``color_mode``).
        ``K_r``: the intrinsics that are rendered (default ``K``).
        """
        world = self.world
        K_r = K if K_r is None else K_r
        W, H = self.W, self.H
        src = self.sources[int(v['source'])] if 'source' in v else self.sources[0]
        scale = float(v[src.scale]) if isinstance(src.scale, str) else src.scale
        if src.kind == 'procedural':
            stem = f'{src.target}_{next(self._proc_count)}'
            path = write_procedural(src, v, world.tmp, stem)
            body = world.load_urdf(path, scale)
            for ext in ('.urdf', '.obj'):  # loaded; PyBullet keeps the meshes
                if os.path.exists(os.path.join(world.tmp, stem + ext)):
                    os.remove(os.path.join(world.tmp, stem + ext))
        else:
            body = world.load_urdf(self._render_urdf.get(src.name, src.target), scale,
                                   cached=src.cacheable)
        obj = UrdfInstance(body, world.cid, scale)
        obj.set_base_pose(np.eye(4))
        joints = obj.set_joints({n: obj.joint_value(n, js, v) for n, js in src.joints.items()})
        box = obj.aabb()
        c = box.mean(axis=0)
        corners = np.array(list(itertools.product(*box.T)))
        a, e = np.radians(v['view_azimuth']), np.radians(np.clip(v['view_elevation'], -85, 85))
        f = -np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        r = np.cross(f, [0.0, 0.0, 1.0])
        r /= np.linalg.norm(r)
        R_obj_cam = np.c_[r, np.cross(f, r), f] @ rot_z(np.radians(v.get('view_roll', 0.0)))
        R = R_obj_cam.T                                  # object -> camera rotation
        q = (corners - c) @ R.T
        ext = q.max(axis=0) - q.min(axis=0)
        frac = v['object_size_frac']
        Z = max(K[0, 0] * ext[0] / (frac * W), K[1, 1] * ext[1] / (frac * H), 0.15)
        Z = max(Z, 0.12 - q[:, 2].min())
        u_c, v_c = self._centre_in_view(q + [0, 0, Z], K, v)
        t_c = Z * np.linalg.solve(K, [u_c, v_c, 1.0])
        T_obj = _T(R, t_c - R @ c)
        obj.set_base_pose(T_obj)
        kp3d = obj.points(self._source_anchors(src))
        self._color_object(rng, v, obj, src)

        occ_ids: List[int] = []
        support = None
        if v.get('support', 0) == 1:  # table / floor under the object (segmentation: 0)
            L = max(3 * float(np.linalg.norm(box[1] - box[0])), 1.0)
            rgba = list(tx.random_color(rng, 0.5) / 255.0) + [1.0]
            tex = (world.object_tex[int(rng.integers(0, len(world.object_tex)))]
                   if rng.random() < 0.6 else None)
            T_top = T_obj @ _T(np.eye(3), [c[0], c[1], box[0, 2]])
            if not self.raycast_support or (int(v.get('shadow', 0)) == 1
                                            and not self.raycast_shadow):
                self._add_support(T_top, L, rgba, tex, K_r, v['baseline'])
            else:  # drawn into the renders by _draw_support (shadows: _shadow_map)
                support = (T_top, L, rgba, tex)
        T_view = _T(np.eye(3), [t_c[0], t_c[1], Z + q[:, 2].min()])
        if v.get('bar', 0) == 1:
            occ_ids.append(self._add_bar(rng, T_view, ext[0] / 2, ext[1] / 2))
        dis_ids = [self._add_distractor(rng, K, Z) for _ in range(int(v['n_distractors']))]
        extra = {'object': {'source': src.name, 'urdf': src.spec, 'scale': scale,
                            'joints': joints}}
        return _Scene({body}, occ_ids, dis_ids, kp3d, T_obj, u_c, v_c, Z, extra,
                      self.kp_tol, obj, support)

    def _add_support(self, T_top: np.ndarray, half: float, rgba, tex, K_r, baseline,
                     margin: float = 8.0) -> Optional[int]:
        """Add the support plane: the part of a square that both cameras can see.

        The square (half size ``half``, m, in the xy plane of ``T_top``, seen
        from its +z side) reaches far beyond the view.  TinyRenderer does not
        clip triangles: one that crosses the near plane or leaves the image
        is still scanned over its whole on-screen bounding box, which made
        an unclipped plane cost about 85 ms per view.  The square is
        therefore clipped to the near plane and to the union of the two
        render frusta (``margin`` px wider), and only that polygon is
        added.  What the cameras see is the same plane; texture coordinates
        follow the unclipped square (the texture spans all of it).

        Returns:
            The body id, or ``None`` when no part of the plane is in view.
        """
        n = self.near
        fx, fy, cx, cy = K_r[0, 0], K_r[1, 1], K_r[0, 2], K_r[1, 2]
        m, W, H = margin, self.W, self.H
        # half-spaces a . p + d >= 0, p in the left optical (world) frame
        planes = [(np.array([0.0, 0.0, 1.0]), -n),                          # near
                  (np.array([fx, 0.0, cx + m]), 0.0),                         # left (left cam)
                  (np.array([-fx, 0.0, W - 1 + m - cx]), fx * baseline),      # right (right cam)
                  (np.array([0.0, fy, cy + m]), 0.0),                         # top
                  (np.array([0.0, -fy, H - 1 + m - cy]), 0.0)]                # bottom
        sq = np.array([[-half, -half, 0.0], [half, -half, 0.0], [half, half, 0.0],
                       [-half, half, 0.0]])
        poly = sq @ T_top[:3, :3].T + T_top[:3, 3]
        for a, d in planes:
            poly = _clip_polygon(poly, a, d)
            if len(poly) < 3:
                return None
        local = (poly - T_top[:3, 3]) @ T_top[:3, :3]
        uvs = ((local[:, :2] + half) / (2 * half)).tolist()
        idx = [i for k in range(1, len(poly) - 1) for i in (0, k, k + 1)]  # +z side: CCW
        return self.world.add_mesh(np.eye(4), poly.tolist(), idx, uvs,
                                   [T_top[:3, 2].tolist()] * len(poly), rgba, tex)

    def _lit_side(self, support, light) -> bool:
        """Return whether TinyRenderer's shadow light (a point) is above the support plane."""
        T_top = support[0]
        pos = np.asarray(light['lightDirection'], np.float64)
        pos = pos / max(np.linalg.norm(pos), 1e-12) * float(light['lightDistance'])
        return float(T_top[:3, 2] @ (pos - T_top[:3, 3])) > 0.0

    def _shadow_map(self, sc: '_Scene', light) -> Optional[tuple]:
        """Depth of the shadow casters seen from the light, for a ray-cast support plane.

        TinyRenderer's shadow pass renders every body (the plane too) from a
        point light at ``lightDirection * lightDistance`` (world frame) at
        the full image size, and its shader multiplies the diffuse and
        specular terms by 0.8 where the shadow map is nearer than the
        surface.  Here the bodies (object, bar, distractors; no plane) are
        rendered once per sample from the same point, ``shadow_map_px``
        square, with a field of view fitted to the object's bounding box:
        every floor point in the object's shadow projects into its
        silhouette there.  :meth:`_draw_support` looks the map up per
        pixel (a homography from the plane) for both views.

        Returns:
            ``(camera, linear depth (px, px) float32, inf where no body)``,
            or None when the light is inside the object's bounding box.
        """
        from .scene.camera import PinholeCamera
        ldir = np.asarray(light['lightDirection'], np.float64)
        pos = ldir / max(np.linalg.norm(ldir), 1e-12) * float(light['lightDistance'])
        corners = np.array(list(itertools.product(*sc.instance.aabb().T)))
        R = _rot_to(corners.mean(axis=0) - pos)          # light camera axes (z: to the object)
        pc = (corners - pos) @ R
        if pc[:, 2].min() <= 0.05:
            return None
        px = self.shadow_map_px
        tan = 1.05 * float(np.max(np.abs(pc[:, :2]) / pc[:, 2:3]))
        f = (px / 2 - 1) / max(tan, 1e-6)
        K = np.array([[f, 0, (px - 1) / 2], [0, f, (px - 1) / 2], [0, 0, 1]])
        cam = PinholeCamera(K, px, px, _T(R, pos), near=0.02,
                            far=float(2 * pc[:, 2].max() + 1.0))
        _, zbuf, seg = self.world.render(cam, dict(light, shadow=0))
        depth = cam.linear_depth(zbuf).astype(np.float32)
        depth[seg < 0] = np.inf
        return cam, depth

    def _draw_support(self, render, cam, support, light, shadow_map=None):
        """Draw the support plane into a render (colour, depth buffer, segmentation).

        TinyRenderer costs ~150 ns per covered pixel, and a floor under the
        object often fills the view (~45 ms per view even clipped, see
        :meth:`_add_support`).  It is drawn here instead (~4 ms per view): a
        plane's depth buffer value is affine in the pixel coordinates and
        its texture coordinates are a homography of them, so a depth test
        against the render and one ``cv2.warpPerspective`` (nearest texel)
        give it.  Shading: TinyRenderer's shader for a flat surface, per
        channel ``texel * rgba * (ambient + s * (diffuse + specular) *
        lightColor)`` (specular = reflected light's world z), ``s`` = 0.8 in
        shadow, else 1.  Shadows (``shadow_map`` from :meth:`_shadow_map`):
        the plane's point behind each pixel is another homography away from
        the shadow map's pixel; it is in shadow where the map holds a body
        nearer the light.  The plane's segmentation id is
        :data:`SEG_SUPPORT_ID` (no body: segmentation output 0, an "other
        body" for the visibility test, as the rendered plane was).  The
        render's arrays are modified in place.
        """
        rgb, dbuf, seg = render
        T_top, half, rgba, tex = support
        T_cw = np.linalg.inv(cam.T_world_cam)
        R = T_cw[:3, :3] @ T_top[:3, :3]                 # plane axes in the camera frame
        t = T_cw[:3, :3] @ T_top[:3, 3] + T_cw[:3, 3]
        nrm = R[:, 2]
        c = float(nrm @ t)                               # plane: nrm . X = c
        if c >= 0:  # camera below the plane: back face, culled as in TinyRenderer
            return render
        Kinv = np.linalg.inv(cam.K)
        near, far = cam.near, cam.far
        # depth buffer d = (1/n - 1/z) / (1/n - 1/f) with 1/z = (nrm . K^-1 [u, v, 1]) / c
        g = (nrm @ Kinv) / c * (-1.0 / (1.0 / near - 1.0 / far))
        g[2] += (1.0 / near) / (1.0 / near - 1.0 / far)
        d = ((g[0] * np.arange(self.W, dtype=np.float32))[None, :]
             + (g[1] * np.arange(self.H, dtype=np.float32) + g[2])[:, None]).astype(np.float32)
        # pixel -> texel homography: plane coordinates of the hit point, scaled
        img = (self.world.texture_image(tex) if tex is not None
               else np.full((2, 2, 3), 255, np.uint8))
        q0, q1 = float(R[:, 0] @ t), float(R[:, 1] @ t)
        L = np.stack([c * R[:, 0] - q0 * nrm, c * R[:, 1] - q1 * nrm, nrm]) @ Kinv
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP

        def warp(im):
            h, w = im.shape[:2]
            S = np.array([[w / (2 * half), 0, w / 2], [0, h / (2 * half), h / 2], [0, 0, 1]])
            # replicated border: nearest rounding reaches half a texel past the last one
            return cv2.warpPerspective(im, S @ L, (self.W, self.H), flags=flags,
                                       borderMode=cv2.BORDER_REPLICATE)

        texel = warp(img)
        # the square's extent: nearest-texel rounding is off by half a texel, so
        # a fine mask (2L / 1024 per texel, zero border) rather than the texture decides it
        if getattr(self, '_square', None) is None:
            self._square = np.full((1024, 1024), 255, np.uint8)
        h, w = self._square.shape
        S = np.array([[w / (2 * half), 0, w / 2], [0, h / (2 * half), h / 2], [0, 0, 1]])
        inside = cv2.warpPerspective(self._square, S @ L, (self.W, self.H), flags=flags)
        draw = (inside > 0) & (d > 0) & (d < dbuf)
        if not draw.any():
            return render
        ldir = np.asarray(light['lightDirection'], np.float64)
        ldir /= max(np.linalg.norm(ldir), 1e-12)
        ka, kd, ks = (light['lightAmbientCoeff'], light['lightDiffuseCoeff'],
                      light['lightSpecularCoeff'])
        n_w = T_top[:3, 2]
        refl = n_w * (2.0 * float(n_w @ ldir)) - ldir   # TinyRenderer: specular = r.z (world)
        refl /= max(np.linalg.norm(refl), 1e-12)
        lit = kd * max(0.0, float(n_w @ ldir)) + ks * max(0.0, float(refl[2]))
        rgba3, lc = np.asarray(rgba[:3], np.float64), np.asarray(light['lightColor'], np.float64)

        def shade(s):
            colour = rgba3 * (ka + s * lit * lc)
            return cv2.multiply(texel, tuple(float(x) for x in colour) + (0.0,))

        cv2.copyTo(shade(1.0), draw.view(np.uint8), rgb)
        if shadow_map is not None:
            lcam, ldepth = shadow_map
            T_lw = np.linalg.inv(lcam.T_world_cam)
            # plane (x, y, 1) -> light camera coordinates; A: pixel -> w * light coordinates
            M = T_lw[:3, :3] @ np.c_[T_top[:3, 0], T_top[:3, 1],
                                     T_top[:3, 3] - lcam.T_world_cam[:3, 3]]
            A = M @ L
            hit = cv2.warpPerspective(ldepth, lcam.K @ A, (self.W, self.H), flags=flags,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=np.inf)
            uu = np.arange(self.W, dtype=np.float32)[None, :]
            vv = np.arange(self.H, dtype=np.float32)[:, None]
            with np.errstate(divide='ignore', invalid='ignore'):
                z_l = ((A[2, 0] * uu + (A[2, 1] * vv + A[2, 2]))
                       / (L[2, 0] * uu + (L[2, 1] * vv + L[2, 2])))
            dark = draw & (hit < z_l * np.float32(0.998) - np.float32(0.003))
            if dark.any():
                cv2.copyTo(shade(0.8), dark.view(np.uint8), rgb)
        np.copyto(dbuf, d, where=draw)
        np.copyto(seg, SEG_SUPPORT_ID, where=draw)
        return rgb, dbuf, seg

    def _color_object(self, rng, v, obj: UrdfInstance, src) -> None:
        """Recolour the object's links from ``color_mode`` and ``color_hue/saturation/value``.

        Modes: 0 as loaded, 1 one colour, 2 one colour per link, 3 textured.
        """
        mode = int(v.get('color_mode', 0))
        orig = self.world.urdf_rgba.get(obj.body, {})
        hsv = np.uint8([[[int(180 * v.get('color_hue', 0.0)) % 180,
                          int(255 * v.get('color_saturation', 0.0)),
                          int(255 * v.get('color_value', 0.8))]]])
        base = list(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0) + [1.0]
        for i, link in enumerate(obj.visual_links()):
            tex = None
            if mode == 0:
                rgba = orig.get(link, [1.0, 1.0, 1.0, 1.0])
            elif mode == 1 or (mode == 2 and i == 0):
                rgba = base
            elif mode == 2:
                rgba = list(tx.random_color(rng) / 255.0) + [1.0]
            else:
                rgba = list(np.clip(np.array(base[:3]) * 0.5 + 0.5, 0, 1)) + [1.0]
                tex = self.world.object_tex[int(rng.integers(0, len(self.world.object_tex)))]
            obj.set_color(link, rgba, tex)
        if mode == 3 and src.cacheable:
            self.world.uncache(obj.body)  # a texture cannot be taken off again

    def _light(self, rng, v) -> dict:
        """``getCameraImage`` lighting kwargs from the light_* variables."""
        az, pol = np.radians(v['light_azimuth']), np.radians(v['light_polar'])
        ldir = [np.sin(pol) * np.cos(az), np.sin(pol) * np.sin(az), -np.cos(pol)]
        warm, cool = np.array([1.0, 0.85, 0.7]), np.array([0.8, 0.9, 1.0])
        lt = v['light_temperature']
        return dict(lightDirection=[float(x) for x in ldir],
                    lightColor=[float(x) for x in (1 - lt) * warm + lt * cool],
                    lightDistance=float(rng.uniform(2, 5)), shadow=int(v['shadow']),
                    lightAmbientCoeff=float(v['light_ambient']),
                    lightDiffuseCoeff=float(v['light_diffuse']),
                    lightSpecularCoeff=float(v['light_specular']))

    # ------------------------------------------------------------------
    def _inside(self, uv: np.ndarray) -> np.ndarray:
        return ((uv[:, 0] >= -0.5) & (uv[:, 0] < self.W - 0.5) & (uv[:, 1] >= -0.5)
                & (uv[:, 1] < self.H - 0.5) & np.all(np.isfinite(uv), axis=1))

    def visibility(self, uv: np.ndarray, z: np.ndarray, seg: np.ndarray, board_ids) -> np.ndarray:
        """COCO visibility of keypoints in this generator's image size.

        See :func:`keypoint_visibility`.
        """
        return keypoint_visibility(uv, z, seg, board_ids)

    def _frame_color(self, rng) -> list:
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
            c = list(tx.random_color(rng) / 255.0)
        return [float(np.clip(x, 0, 1)) for x in c] + [1.0]

    def _add_hand(self, rng, T_board, sgn, s, margin, frame, hy, v) -> List[int]:
        """Add a hand gripping the board's left (sgn=-1) or right (+1) edge.

        Palm behind the board, 1-4 digits in front reaching ``hand_overlap``
        onto it, a forearm going outwards, down and back.
        """
        w = self.world
        hs = rng.uniform(0.85, 1.2)
        skin = tx.SKIN_TONES[int(rng.integers(0, len(tx.SKIN_TONES)))] / 255.0
        skin = list(np.clip(skin * rng.uniform(0.8, 1.1), 0, 1)) + [1.0]
        if rng.random() < 0.15:  # gloves
            skin = list(tx.random_color(rng) / 255.0) + [1.0]
        x_e = sgn * (5 + margin + frame) * s
        y_h = rng.uniform(-0.6, 0.6) * hy
        th = v['thickness']
        # palm (behind the board) + digits (in front), in a hand frame = board frame
        palm_he = np.array([0.04, 0.045, 0.014]) * hs
        pc = [x_e + sgn * palm_he[0] * rng.uniform(-0.3, 0.8), y_h, th + palm_he[2] + 1e-3]
        parts = [('box', palm_he, _T(rot_z(rng.uniform(-0.3, 0.3)), pc))]
        n_d = int(rng.integers(1, 5))
        r = (0.011 if n_d == 1 else 0.0085) * hs
        ys = y_h + (np.arange(n_d) - (n_d - 1) / 2) * 2.1 * r
        for yd in ys:
            reach = v['hand_overlap'] * rng.uniform(0.6, 1.0)
            x0, x1 = x_e + sgn * 0.025 * hs, x_e - sgn * reach
            length = max(abs(x0 - x1) - 2 * r, 1e-3)
            Rd = rot_z(rng.uniform(-0.25, 0.25)) @ rot_y(np.pi / 2)
            parts.append(('capsule', (r, length), _T(Rd, [(x0 + x1) / 2, yd, -(r + 1.5e-3)])))
        ids = [w.add_compound(T_board, parts, skin)]
        # forearm: outward and down (board frame), going back in depth
        a = rng.uniform(np.radians(10), np.radians(80))
        d = np.array([sgn * np.cos(a), np.sin(a), rng.uniform(0.1, 0.8)])
        length = rng.uniform(0.15, 0.3)
        rad = rng.uniform(0.028, 0.042) * hs
        start = np.array(pc) + sgn * np.array([palm_he[0], 0, 0])
        centre = start + d / np.linalg.norm(d) * (length / 2 + rad)
        sleeve = skin if rng.random() < 0.3 else list(tx.random_color(rng) / 255.0) + [1.0]
        tex = (w.object_tex[int(rng.integers(0, len(w.object_tex)))]
               if sleeve is not skin and rng.random() < 0.5 else None)
        ids.append(w.add_capsule(T_board @ _T(_rot_to(d), centre), rad, length, sleeve, tex))
        return ids

    def _add_bar(self, rng, T_board, hx, hy) -> int:
        """Add a bar (stick, cable, arm) crossing the board in front of it."""
        L = 3 * np.hypot(hx, hy)
        he = [L / 2, rng.uniform(0.005, 0.025), rng.uniform(0.005, 0.015)]
        pos = [rng.uniform(-0.8, 0.8) * hx, rng.uniform(-0.8, 0.8) * hy,
               -(he[2] + rng.uniform(0.003, 0.15))]
        rgba = list(tx.random_color(rng) / 255.0) + [1.0]
        tex = self.world.object_tex[int(rng.integers(0, len(self.world.object_tex)))] \
            if rng.random() < 0.4 else None
        return self.world.add_box(T_board @ _T(rot_z(rng.uniform(0, np.pi)), pos), he, rgba, tex)

    def _add_distractor(self, rng, K, z_board) -> int:
        """Add a primitive or mesh at a random depth (in front of the board in 25%)."""
        if rng.random() < 0.25 and z_board > 0.35:
            z = rng.uniform(0.2, z_board - 0.1)
        else:
            z = z_board + rng.uniform(0.05, 3.0)
        u, vv = rng.uniform(-0.1, 1.1) * self.W, rng.uniform(-0.1, 1.1) * self.H
        pos = z * np.linalg.solve(K, [u, vv, 1.0])
        size_px = rng.uniform(12, 90)
        size = size_px * z / K[0, 0]
        n_kinds = 4 + len(self.world.mesh_shapes)
        kind = int(rng.integers(0, 4)) if rng.random() < 0.5 else int(rng.integers(4, n_kinds))
        if kind >= 4:  # fixed-size mesh: choose the depth that gives size_px
            rad = self.world.mesh_radii[(kind - 4) % len(self.world.mesh_radii)]
            z = float(np.clip(K[0, 0] * rad / size_px, 0.2, 8.0))
            pos = z * np.linalg.solve(K, [u, vv, 1.0])
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        x, y, zq, w = q
        R = np.array([[1 - 2 * (y * y + zq * zq), 2 * (x * y - zq * w), 2 * (x * zq + y * w)],
                      [2 * (x * y + zq * w), 1 - 2 * (x * x + zq * zq), 2 * (y * zq - x * w)],
                      [2 * (x * zq - y * w), 2 * (y * zq + x * w), 1 - 2 * (x * x + y * y)]])
        rgba = list(tx.random_color(rng) / 255.0) + [1.0]
        tex = self.world.object_tex[int(rng.integers(0, len(self.world.object_tex)))] \
            if rng.random() < 0.5 else None
        return self.world.add_primitive(kind, _T(R, pos), size, rgba, tex,
                                        aspect=rng.uniform(0.3, 1.5, 3))

    def _remap(self, img: np.ndarray, K, K_r, D, interp=cv2.INTER_NEAREST) -> np.ndarray:
        """Distort a pinhole render (intrinsics ``K_r``) into the camera (K, D)."""
        if D is None:
            return img
        key = (tuple(K.ravel()), tuple(K_r.ravel()), tuple(D))
        if getattr(self, '_maps_key', None) != key:
            self._maps = distortion_maps(K, D, self.W, self.H, K_r)
            self._maps_key = key
        return cv2.remap(img, self._maps[0], self._maps[1], interp,
                         borderMode=cv2.BORDER_REPLICATE)

    def _compose(self, rng, v, K, K_r, renders, u_c, v_c, z_board, D) -> Dict[str, np.ndarray]:
        """Background + person compositing and camera effects for both views.

        The background canvas is ``pad`` px wider than the image; the right
        view takes it shifted by the disparity ``fx * baseline / depth``.
        """
        W, H, pad = self.W, self.H, self.pad
        fx, b = K_r[0, 0], v['baseline']
        bg = tx.make_background(v['background_type'], rng, H, W + pad, self.lib)
        d_bg = int(min(pad, round(fx * b / v['background_depth'])))
        person = None
        if v['person'] == 1:
            zp = z_board + rng.uniform(0.1, 0.6)
            pc = (u_c + rng.uniform(-0.3, 0.3) * W, v_c + rng.uniform(-0.1, 0.4) * H)
            h2, w2 = H // 2, (W + pad) // 2
            prgb, palpha = tx.person_layer(rng, h2, w2, (pc[0] / 2, pc[1] / 2),
                                           fx * rng.uniform(0.35, 0.5) / zp / 2)
            prgb = cv2.resize(np.clip(prgb, 0, 255).astype(np.uint8), (W + pad, H))
            pmask = cv2.resize((palpha > 0.5).astype(np.uint8), (W + pad, H),
                               interpolation=cv2.INTER_NEAREST)
            person = (prgb, pmask, int(min(pad, round(fx * b / zp))))
        # per-sample camera response, small per-view differences
        wb = rng.uniform(0.85, 1.15, 3)
        mb_angle = rng.uniform(0, 180)
        out = {}
        for n, (rgb, _, seg) in renders.items():
            shift = 0 if n == 'left' else 1
            img = np.ascontiguousarray(bg[:, d_bg * shift:d_bg * shift + W])
            if person is not None:
                o = person[2] * shift
                cv2.copyTo(np.ascontiguousarray(person[0][:, o:o + W]),
                           np.ascontiguousarray(person[1][:, o:o + W]), img)
            cv2.copyTo(np.ascontiguousarray(rgb), (seg >= 0).astype(np.uint8), img)
            img = self._camera_effects(img, v, wb * rng.uniform(0.97, 1.03, 3), mb_angle)
            if D is not None:
                img = self._remap(img, K, K_r, D, cv2.INTER_LINEAR)
            out[n] = self._sensor(img, v, rng)
        return out

    def _camera_effects(self, img: np.ndarray, v, wb, mb_angle) -> np.ndarray:
        """Apply the camera response; uint8 (H, W, 3) in and out.

        Exposure (with partial auto-exposure), white balance, vignetting,
        contrast and gamma (one LUT), Gaussian and motion blur.
        """
        mean = float(img[::4, ::4].mean()) + 1.0
        gain = v['exposure'] * (110.0 / mean) ** 0.7
        if v['vignetting'] > 0.01:
            if getattr(self, '_r2', None) is None:
                yy, xx = np.mgrid[0:self.H, 0:self.W].astype(np.float32)
                self._r2 = (((xx - self.W / 2) ** 2 + (yy - self.H / 2) ** 2)
                            / ((self.W / 2) ** 2 + (self.H / 2) ** 2))
            vm = (1.0 - v['vignetting']) + v['vignetting'] * (1.0 - self._r2)
            img = cv2.multiply(img, cv2.merge([vm, vm, vm]), dtype=cv2.CV_8U)
            gain /= 1.0 - 0.5 * v['vignetting']
        x = np.arange(256, dtype=np.float64)
        m = mean * gain
        lut = np.empty((256, 3))
        for c in range(3):
            y = (x * gain * wb[c] - m) * v['contrast'] + m
            lut[:, c] = 255.0 * (np.clip(y, 0, 255) / 255.0) ** (1.0 / v['gamma'])
        img = cv2.LUT(img, np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(1, 256, 3))
        if v['blur_sigma'] > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), v['blur_sigma'])
        L = v['motion_blur']
        if L > 1.5:
            k = np.zeros((int(np.ceil(L)) | 1, int(np.ceil(L)) | 1), np.float32)
            c = k.shape[0] // 2
            k[c, :] = 1
            k = cv2.warpAffine(k, cv2.getRotationMatrix2D((c, c), mb_angle, 1.0), k.shape)
            img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
        return img

    def _noise_bank(self) -> np.ndarray:
        if getattr(self, '_bank', None) is None:
            g = np.random.default_rng(4242)
            self._bank = g.standard_normal((self.H + 64, self.W + 64, 3), dtype=np.float32)
        return self._bank

    def _sensor(self, img: np.ndarray, v, rng) -> np.ndarray:
        """Apply sensor effects; uint8 (H, W, 3) out.

        Grayscale (replicated to 3 channels), additive noise (random crop of a
        fixed N(0, 1) bank), JPEG re-compression.
        """
        gray = v['grayscale'] == 1
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if v['noise_sigma'] > 0.2:
            oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
            nz = self._noise_bank()[oy:oy + self.H, ox:ox + self.W]
            nz = nz[:, :, 0] if gray else nz
            img = cv2.add(img, nz * np.float32(v['noise_sigma']), dtype=cv2.CV_8U)
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(v['jpeg_quality'])])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img.ndim == 2:
            img = cv2.merge([img, img, img])
        return img
