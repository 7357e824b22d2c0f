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
"""The PyBullet world: one DIRECT client per process, bodies, rendering.

The world frame is the LEFT camera's optical frame (+x right, +y down,
+z forward, metres); see :mod:`sim_datagen.scene.camera`.

Persistent resources (textures, distractor meshes) are loaded once; the
per-sample bodies (board, hands, bars, distractors) are created by
:meth:`World.add_*` and removed by :meth:`World.clear`.  Every
``reset_every`` samples the simulation is reset to bound the memory held by
PyBullet's visual-shape tables (rendering is unaffected, so outputs stay a
function of the sample seed only).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
from keypoint_perception.core.rotations import quaternion_from_matrix
import numpy as np
import pybullet as p
import pybullet_data

from .camera import PinholeCamera
from .textures import checker_texture, marker_texture, object_textures

#: fiducial marker prints loaded per world (robot markers, scene.attachments)
N_MARKER_TEXTURES = 8
# margin (in squares) of the board texture's white frame; must be >= the
# largest physical margin so that the UV mapping stays inside the texture
TEXTURE_MARGIN = 1.5


def obj_file_radius(path: str) -> float:
    """Largest vertex distance from the origin in an OBJ file (file units)."""
    r = 0.0
    with open(path) as f:
        for line in f:
            if line.startswith('v '):
                r = max(r, float(np.linalg.norm([float(x) for x in line.split()[1:4]])))
    return r


def _pose_args(T: np.ndarray):
    return T[:3, 3].tolist(), quaternion_from_matrix(T[:3, :3]).tolist()


class World:
    """PyBullet DIRECT world with texture caches and per-sample bodies.

    Args:
        n_object_textures: procedural textures for distractors/clothing.
        n_meshes: ``pybullet_data/random_urdfs`` meshes kept loaded.
        texture_files: extra texture image files (e.g. pybullet_data's).
        board_texture_px: texture pixels per board square.
        reset_every: samples between ``resetSimulation`` calls.
        resource_seed: seed of the (worker-independent) resource selection.
    """

    def __init__(self, n_object_textures: int = 24, n_meshes: int = 12,
                 texture_files: Sequence[str] = (), board_texture_px: int = 48,
                 reset_every: int = 250, resource_seed: int = 12345):
        self.cid = p.connect(p.DIRECT)
        self.tmp = tempfile.mkdtemp(prefix='sim_datagen_')
        self.n_object_textures = n_object_textures
        self.n_meshes = n_meshes
        self.texture_files = list(texture_files)
        self.board_texture_px = board_texture_px
        self.reset_every = reset_every
        self.resource_seed = resource_seed
        self._bodies: List[int] = []
        #: URDF bodies kept loaded between samples, {(path, scale): body id}
        self._urdf_cache: Dict[Tuple[str, float], int] = {}
        #: {OBJ file: bounding radius about its origin, file units} (add_mesh_file)
        self._mesh_file_radius: Dict[str, float] = {}
        self._count = 0
        self._reset()

    # -- resources -------------------------------------------------------
    def _reset(self):
        p.resetSimulation(physicsClientId=self.cid)
        self._urdf_cache = {}
        board_keys = list(getattr(self, '_board_tex', {}))  # reloaded below
        #: {body id: {link index: rgba}} as loaded, for every URDF body
        self.urdf_rgba: Dict[int, Dict[int, List[float]]] = {}
        self._board_tex: Dict[Tuple[int, int], int] = {}
        rng = np.random.default_rng(self.resource_seed)
        self.object_tex: List[int] = []
        #: {texture id: image file} of the object textures, see texture_image
        self._tex_files: Dict[int, str] = {}
        self._tex_images: Dict[str, np.ndarray] = {}
        for i, im in enumerate(object_textures(rng, self.n_object_textures)):
            f = os.path.join(self.tmp, f'obj_{i}.png')
            if not os.path.exists(f):
                cv2.imwrite(f, im[:, :, ::-1])
            self.object_tex.append(p.loadTexture(f, physicsClientId=self.cid))
            self._tex_files[self.object_tex[-1]] = f
        for f in self.texture_files:
            t = p.loadTexture(f, physicsClientId=self.cid)
            if t >= 0:
                self.object_tex.append(t)
                self._tex_files[t] = f
        self.mesh_shapes: List[int] = []
        #: bounding radius (m) of each mesh about its origin
        self.mesh_radii: List[float] = []
        root = os.path.join(pybullet_data.getDataPath(), 'random_urdfs')
        ids = rng.choice(1000, size=self.n_meshes, replace=False) if self.n_meshes else []
        for i in ids:
            f = os.path.join(root, f'{i:03d}', f'{i:03d}.obj')
            if os.path.exists(f):
                s = float(rng.uniform(0.02, 0.05))
                vs = p.createVisualShape(p.GEOM_MESH, fileName=f, meshScale=[s] * 3,
                                         physicsClientId=self.cid)
                if vs >= 0:
                    self.mesh_shapes.append(vs)
                    self.mesh_radii.append(s * obj_file_radius(f))
        for key in board_keys:
            self.board_texture(*key)
        self._marker_tex: List[int] = []  # loaded when first asked for

    def marker_textures(self) -> List[int]:
        """Texture ids of ``N_MARKER_TEXTURES`` fiducial marker prints (made once per world).

        They have a random generator of their own, so that loading them
        changes no other resource of the same seed.
        """
        if not self._marker_tex:
            marker_rng = np.random.default_rng([self.resource_seed, 1])
            for i in range(N_MARKER_TEXTURES):
                f = os.path.join(self.tmp, f'marker_{i}.png')
                if not os.path.exists(f):
                    cv2.imwrite(f, marker_texture(marker_rng))
                self._marker_tex.append(p.loadTexture(f, physicsClientId=self.cid))
        return self._marker_tex

    def texture_image(self, tex: int) -> np.ndarray:
        """RGB image (H, W, 3) uint8 of an object texture id (cached per file)."""
        f = self._tex_files[int(tex)]
        if f not in self._tex_images:
            im = cv2.imread(f, cv2.IMREAD_COLOR)
            self._tex_images[f] = np.ascontiguousarray(im[:, :, ::-1])
        return self._tex_images[f]

    def board_texture(self, phase: int, black: int) -> int:
        """Texture id of the board print (cached per (phase, black level))."""
        key = (int(phase), int(black))
        if key not in self._board_tex:
            f = os.path.join(self.tmp, f'board_{key[0]}_{key[1]}.png')
            if not os.path.exists(f):
                im = checker_texture(key[0], key[1], 255, self.board_texture_px,
                                     margin=TEXTURE_MARGIN)
                cv2.imwrite(f, im[:, :, ::-1])
            self._board_tex[key] = p.loadTexture(f, physicsClientId=self.cid)
        return self._board_tex[key]

    # -- bodies ------------------------------------------------------------
    def _body(self, vs: int, T: np.ndarray, rgba=None, tex: Optional[int] = None) -> int:
        pos, q = _pose_args(T)
        b = p.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=pos,
                              baseOrientation=q, physicsClientId=self.cid)
        kw = {}
        if rgba is not None:
            kw['rgbaColor'] = [float(c) for c in rgba]
        if tex is not None:
            kw['textureUniqueId'] = int(tex)
        if kw:
            p.changeVisualShape(b, -1, physicsClientId=self.cid, **kw)
        self._bodies.append(b)
        return b

    def add_board(self, T_world_board: np.ndarray, square: float, margin: float,
                  thickness: float, frame: float, tex: int, paper_rgba, frame_rgba
                  ) -> Tuple[int, int]:
        """Add the printed board (textured quad) and its backing plate.

        Object frame as in ``checkerboard.yaml``: origin at the centre of the
        inner-corner grid, +x along the 10-square side, +z into the board;
        the print faces -z.  ``margin`` (white border) and ``frame``
        (backing plate beyond the paper) are in squares, ``thickness`` in m.

        Returns:
            (paper body id, backing body id).
        """
        hx, hy = (5 + margin) * square, (3.5 + margin) * square
        tm = TEXTURE_MARGIN
        # texture u runs along +x, texture row 0 (v = 1) is the -y side
        u0, u1 = (tm - margin) / (10 + 2 * tm), (10 + tm + margin) / (10 + 2 * tm)
        v0, v1 = 1 - (tm - margin) / (7 + 2 * tm), 1 - (7 + tm + margin) / (7 + 2 * tm)
        verts = [[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0]]
        uvs = [[u0, v0], [u1, v0], [u1, v1], [u0, v1]]
        # counter-clockwise as seen from -z (the camera side): 0, 2, 1 / 0, 3, 2
        vs = p.createVisualShape(p.GEOM_MESH, vertices=verts, indices=[0, 2, 1, 0, 3, 2],
                                 uvs=uvs, normals=[[0, 0, -1]] * 4, physicsClientId=self.cid)
        paper = self._body(vs, T_world_board, paper_rgba, tex)
        # The backing plate is modelled as a ring of four boxes around the
        # paper (its visible part for tilts < 90 deg): a full plate behind the
        # paper would double the rasterized area (TinyRenderer cost ~ pixels).
        fw = frame * square + 2e-3           # ring width incl. 2 mm under the paper
        zc = thickness / 2 + 3e-4            # 0.3 mm behind the print: no z-fighting
        ox, oy = hx + frame * square, hy + frame * square
        ring = [([ox, fw / 2, thickness / 2], [0, -(oy - fw / 2), zc]),
                ([ox, fw / 2, thickness / 2], [0, oy - fw / 2, zc]),
                ([fw / 2, oy, thickness / 2], [-(ox - fw / 2), 0, zc]),
                ([fw / 2, oy, thickness / 2], [ox - fw / 2, 0, zc])]
        vb = p.createVisualShapeArray(
            shapeTypes=[p.GEOM_BOX] * 4, halfExtents=[r[0] for r in ring],
            visualFramePositions=[r[1] for r in ring], physicsClientId=self.cid)
        backing = self._body(vb, T_world_board, frame_rgba)
        return paper, backing

    def add_mesh(self, T: np.ndarray, vertices, indices, uvs, normals, rgba,
                 tex: Optional[int] = None) -> int:
        """Add a triangle mesh (vertices in the body frame, m) at pose ``T``.

        Triangles are counter-clockwise as seen from the side they show;
        ``uvs`` and ``normals`` are per vertex.  The mesh is handed to
        PyBullet unindexed (one vertex per index): with shared vertices its
        TinyRenderer shaded some triangles with normals that were not the
        given ones (lighter wedges on a flat polygon).
        """
        idx = [int(i) for i in indices]
        vs = p.createVisualShape(p.GEOM_MESH, vertices=[list(vertices[i]) for i in idx],
                                 indices=list(range(len(idx))), uvs=[list(uvs[i]) for i in idx],
                                 normals=[list(normals[i]) for i in idx],
                                 physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def add_box(self, T: np.ndarray, half_extents, rgba, tex: Optional[int] = None) -> int:
        """Add a box (half extents in m) at pose ``T`` (world)."""
        vs = p.createVisualShape(p.GEOM_BOX, halfExtents=[float(h) for h in half_extents],
                                 physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def add_capsule(self, T: np.ndarray, radius: float, length: float, rgba,
                    tex: Optional[int] = None) -> int:
        """Add a capsule along the local z axis (``length`` = cylinder part, m)."""
        vs = p.createVisualShape(p.GEOM_CAPSULE, radius=float(radius), length=float(length),
                                 physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def set_pose(self, body: int, T: np.ndarray) -> None:
        """Move a body made by ``add_*`` (origin = its base frame) to pose ``T`` (4, 4)."""
        pos, q = _pose_args(T)
        p.resetBasePositionAndOrientation(body, pos, q, physicsClientId=self.cid)

    def add_cylinder(self, T: np.ndarray, radius: float, length: float, rgba,
                     tex: Optional[int] = None) -> int:
        """Add a cylinder along the local z axis (``radius``, ``length`` in m) at pose ``T``."""
        vs = p.createVisualShape(p.GEOM_CYLINDER, radius=float(radius), length=float(length),
                                 physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def add_mesh_file(self, T: np.ndarray, path: str, radius: float, rgba,
                      tex: Optional[int] = None) -> int:
        """Add an OBJ mesh at pose ``T``, scaled to a bounding radius ``radius`` (m).

        The radius is the largest vertex distance from the mesh's origin.

        Raises:
            pybullet.error: the file cannot be loaded.
        """
        if path not in self._mesh_file_radius:
            self._mesh_file_radius[path] = max(obj_file_radius(path), 1e-6)
        scale = float(radius) / self._mesh_file_radius[path]
        vs = p.createVisualShape(p.GEOM_MESH, fileName=path, meshScale=[scale] * 3,
                                 physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def add_compound(self, T: np.ndarray, parts, rgba, tex: Optional[int] = None) -> int:
        """Add one body made of several boxes/capsules sharing a colour.

        Cheaper to create than one body per part.

        Args:
            T: (4, 4) body pose in the world.
            parts: list of ``('box', half_extents(3,), T_body_part)`` or
                ``('capsule', (radius, length), T_body_part)``.
            rgba: colour, 4 floats in [0, 1].
            tex: optional texture id.
        """
        types, he, radii, lengths, pos, orn = [], [], [], [], [], []
        for kind, dims, Tp in parts:
            if kind == 'box':
                types.append(p.GEOM_BOX)
                he.append([float(d) for d in dims])
                radii.append(0.0)
                lengths.append(0.0)
            else:
                types.append(p.GEOM_CAPSULE)
                he.append([0.0, 0.0, 0.0])
                radii.append(float(dims[0]))
                lengths.append(float(dims[1]))
            pp, qq = _pose_args(Tp)
            pos.append(pp)
            orn.append(qq)
        vs = p.createVisualShapeArray(shapeTypes=types, halfExtents=he, radii=radii,
                                      lengths=lengths, visualFramePositions=pos,
                                      visualFrameOrientations=orn, physicsClientId=self.cid)
        return self._body(vs, T, rgba, tex)

    def add_primitive(self, kind: int, T: np.ndarray, size: float, rgba,
                      tex: Optional[int] = None, aspect=(1.0, 1.0, 1.0)) -> int:
        """Add a distractor primitive.

        ``kind``: 0 box, 1 sphere, 2 cylinder, 3 capsule, 4+ a mesh from the
        ``random_urdfs`` pool (``size`` ignored for meshes).
        """
        a = np.asarray(aspect, dtype=np.float64)
        if kind == 0:
            vs = p.createVisualShape(p.GEOM_BOX, halfExtents=(size * a).tolist(),
                                     physicsClientId=self.cid)
        elif kind == 1:
            vs = p.createVisualShape(p.GEOM_SPHERE, radius=size, physicsClientId=self.cid)
        elif kind == 2:
            vs = p.createVisualShape(p.GEOM_CYLINDER, radius=size * a[0], length=2 * size * a[2],
                                     physicsClientId=self.cid)
        elif kind == 3:
            vs = p.createVisualShape(p.GEOM_CAPSULE, radius=size * a[0], length=2 * size * a[2],
                                     physicsClientId=self.cid)
        else:
            if not self.mesh_shapes:
                return self.add_primitive(0, T, size, rgba, tex, aspect)
            vs = self.mesh_shapes[(kind - 4) % len(self.mesh_shapes)]
        return self._body(vs, T, rgba, tex)

    def load_urdf(self, path: str, scale: float = 1.0, cached: bool = False) -> int:
        """Load a URDF with a fixed base; returns the body id.

        Args:
            path: URDF file (meshes relative to it).
            scale: PyBullet ``globalScaling``.
            cached: keep the body loaded after :meth:`clear` (moved out of
                sight) and return the same body for the next call with the
                same ``(path, scale)``; the caller re-sets its pose, joints
                and colours every sample.  Not for files rewritten between
                calls (procedural URDFs).

        Raises:
            pybullet.error: the file cannot be loaded.
        """
        key = (os.path.abspath(path), float(scale))
        if cached and key in self._urdf_cache:
            return self._urdf_cache[key]
        b = p.loadURDF(path, useFixedBase=True, globalScaling=float(scale),
                       flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES, physicsClientId=self.cid)
        if cached:
            self._urdf_cache[key] = b
        else:
            self._bodies.append(b)
        rgba: Dict[int, List[float]] = {}
        for shape in p.getVisualShapeData(b, physicsClientId=self.cid):
            rgba.setdefault(int(shape[1]), [float(c) for c in shape[7]])
        self.urdf_rgba[b] = rgba
        return b

    def uncache(self, body: int) -> None:
        """Treat a cached body as a per-sample one (removed by the next :meth:`clear`).

        Used when a sample changed it in a way that cannot be undone (a texture).
        """
        for k, b in list(self._urdf_cache.items()):
            if b == body:
                del self._urdf_cache[k]
                self._bodies.append(b)

    def clear(self):
        """Remove the per-sample bodies (and reset the simulation periodically).

        Cached URDF bodies stay loaded, moved 1 km behind the camera.
        """
        for b in self._bodies:
            p.removeBody(b, physicsClientId=self.cid)
            self.urdf_rgba.pop(b, None)
        self._bodies = []
        for b in self._urdf_cache.values():
            p.resetBasePositionAndOrientation(b, [0, 0, -1000.0], [0, 0, 0, 1],
                                              physicsClientId=self.cid)
        self._count += 1
        if self.reset_every and self._count % self.reset_every == 0:
            self._reset()

    # -- rendering ---------------------------------------------------------
    def render(self, cam: PinholeCamera, light: dict, seg: bool = True
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render with ER_TINY_RENDERER.

        Args:
            cam: the camera (world = left optical frame).
            light: ``getCameraImage`` lighting kwargs (lightDirection,
                lightColor, lightDistance, shadow, lightAmbientCoeff,
                lightDiffuseCoeff, lightSpecularCoeff).

        Returns:
            rgb (H, W, 3) uint8, depth buffer (H, W) float32 in [0, 1]
            (non-linear, see :meth:`PinholeCamera.linear_depth`), segmentation
            (H, W) int32 body unique id, -1 where nothing was drawn.
        """
        view, proj = cam.pybullet_matrices()
        flags = 0 if seg else p.ER_NO_SEGMENTATION_MASK
        w, h, rgba, depth, segm = p.getCameraImage(
            cam.width, cam.height, view, proj, renderer=p.ER_TINY_RENDERER, flags=flags,
            physicsClientId=self.cid, **light)
        # contiguous RGB (cvtColor drops alpha faster than a strided copy)
        rgb = cv2.cvtColor(np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4), cv2.COLOR_RGBA2RGB)
        depth = np.asarray(depth, dtype=np.float32).reshape(h, w)
        segm = np.asarray(segm, dtype=np.int32).reshape(h, w) if seg else None
        return rgb, depth, segm

    def close(self):
        """Disconnect and delete the temporary texture files."""
        try:
            p.disconnect(self.cid)
        except p.error:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)
