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
"""The belief-map network on a batch of views: preprocessing, forward pass, test-time augmentation.

:class:`KeypointDetector` loads a trained :class:`~.model.BeliefMapNet`
(Heindl et al. 2019), from a checkpoint or from its ONNX export
(:mod:`.onnx_model`), and runs it in a backend (:mod:`.backends`: PyTorch or
ONNX Runtime) on a batch of images or windows of images (both views of a
stereo pair in one batch), returning the last stage's belief maps.
:meth:`KeypointDetector.detect` adds the decode stage for single images (no
stereo).
"""

from typing import List, Optional, Sequence, Tuple
import warnings

import cv2
import numpy as np
import torch

from .backends import choose_backend, OnnxRuntimeBackend, TorchBackend
from .checkpoint import load_checkpoint, resolve_model_path
from .config import PipelineConfig, ROI_REFINEMENTS, TEST_TIME_AUGMENTATIONS
from .heatmaps import merge_mirrored_beliefs, merge_rotated_beliefs
from .model import BeliefNetConfig, normalize_image_array, normalize_images
from .onnx_model import can_export, is_onnx_path, onnx_model_for, read_onnx_model
from .roi import network_view, PixelWindow, roi_around
from .symmetry import SymmetryGroup
from .views import decode_view, ViewKeypoints


#: Synthetic validation error (% of the image diagonal) above which
#: :meth:`KeypointDetector.quality_note` warns; the shipped board model records 0.72%.
QUALITY_WARNING_PCT = 2.0


class KeypointDetector:
    """Belief-map network inference on batches of images (PyTorch or ONNX Runtime, CPU or GPU).

    Attributes:
        model_path: the model file loaded (checkpoint or ONNX file).
        model: the PyTorch network (eval mode) when loaded from a
            checkpoint, else None; with the torch backend it is the one that
            runs, on ``device``.
        backend: the :class:`~.backends.TorchBackend` or
            :class:`~.backends.OnnxRuntimeBackend` that runs the network.
        onnx_path: the ONNX file the onnxruntime backend runs (the model
            itself, the export shipped next to a checkpoint, or one exported
            into the cache on first use), None with torch.
        object_class: the :class:`~.objects.ObjectClass` it was trained for.
        meta: the checkpoint's metadata (provenance, metrics).
        config: the network's :class:`~.model.BeliefNetConfig` (input size,
            stride).
        device: the torch device preprocessing runs on (the network's with
            torch, the CPU with onnxruntime).
        test_time_augmentation: ``'none'``, ``'rot180'`` or ``'hflip'``.
    """

    def __init__(self, model_path: str, device: str = 'cpu', num_threads: int = 0,
                 test_time_augmentation: str = 'auto', backend: str = 'auto'):
        """Load the network into a backend.

        Args:
            model_path: checkpoint file, ONNX file written by
                ``keypoints-export``, or shipped model name.
            device: ``'cpu'`` or ``'cuda[:N]'`` (torch device string).
            num_threads: intra-op threads of the backend; 0 = the thread
                policy's choice (:func:`~.backends.default_threads`).
            test_time_augmentation: one of
                :data:`~.config.TEST_TIME_AUGMENTATIONS`, or ``'auto'`` for
                the one the checkpoint was validated with
                (``meta['test_time_augmentation']``, ``'none'`` if absent).
                ``'rot180'`` and ``'hflip'`` double the network's work;
                ``'hflip'`` needs the class's ``mirror`` permutation.
            backend: one of :data:`~.config.INFERENCE_BACKENDS`
                (:func:`~.backends.choose_backend`; ``'auto'`` on the CPU is
                ONNX Runtime when installed and the network has or can get
                an ONNX export, PyTorch otherwise).

        Raises:
            FileNotFoundError: unknown model.
            ValueError: unknown test-time augmentation or backend, or
                backend torch for an ONNX file
                (:class:`~.checkpoint.CheckpointError`,
                :class:`~.onnx_model.OnnxModelError`: an unusable file).
            RuntimeError: backend onnxruntime without onnxruntime, or a
                checkpoint that has no ONNX export yet without ``onnx``.
        """
        self.model_path = resolve_model_path(model_path)
        chosen = choose_backend(backend, device, self.model_path)
        self.model = None
        self.onnx_path = None
        if is_onnx_path(self.model_path):
            info = read_onnx_model(self.model_path)
            self.onnx_path, self.object_class = self.model_path, info.object_class
            self.config: BeliefNetConfig = info.config
            self.meta = dict(info.meta, test_time_augmentation=info.test_time_augmentation)
        else:
            weights_device = device if chosen == 'torch' else 'cpu'
            self.model, self.object_class, checkpoint = load_checkpoint(self.model_path,
                                                                        weights_device)
            self.meta = checkpoint.get('meta', {})
            self.config = self.model.config
            if chosen == 'onnxruntime':
                self.onnx_path = self._exported(backend)
                if self.onnx_path is None:
                    chosen = 'torch'
        if chosen == 'torch':
            self.backend = TorchBackend(self.model, device, num_threads)
            self.device = self.backend.device
        else:
            self.backend = OnnxRuntimeBackend(self.onnx_path, self.config, device, num_threads)
            self.device = torch.device('cpu')
        if test_time_augmentation == 'auto':
            test_time_augmentation = self.meta.get('test_time_augmentation', 'none')
        if test_time_augmentation not in TEST_TIME_AUGMENTATIONS:
            raise ValueError(f'unknown test-time augmentation {test_time_augmentation!r}; '
                             f'expected auto or one of {TEST_TIME_AUGMENTATIONS}')
        if test_time_augmentation == 'hflip' and self.object_class.mirror is None:
            raise ValueError(f'test-time augmentation hflip needs the mirror permutation of '
                             f'class {self.object_class.name!r} ("mirror" in its YAML), which '
                             'it has not: its keypoint labels have no meaning in a mirror image')
        if test_time_augmentation == 'hflip' and len(SymmetryGroup.of(
                self.object_class.symmetries, self.object_class.num_keypoints)) > 1:
            # the mirrored look's maps would need their own choice of symmetry labelling
            # before the average, as merge_rotated_beliefs makes for rot180
            raise ValueError(f'test-time augmentation hflip is not supported for class '
                             f'{self.object_class.name!r}, which has symmetries (its '
                             'labelling in the mirror image is ambiguous): use rot180 or none')
        self.test_time_augmentation = test_time_augmentation

    @property
    def validation_error_pct(self) -> Optional[float]:
        """Mean 2D error (% of the image diagonal) recorded at the model's selection, or None.

        The checkpoint's ``meta['val']['mean_pct_diag']``: the error on its
        held-out synthetic validation shards when it was chosen
        (``keypoints-train``); None when the file records none.
        """
        val = self.meta.get('val')
        value = val.get('mean_pct_diag') if isinstance(val, dict) else None
        return float(value) if value is not None and np.isfinite(value) else None

    def quality_note(self) -> Tuple[str, bool]:
        """One log line on how good the model was at selection, and whether it is a warning.

        Returns:
            (text, warn): ``warn`` is True when the recorded synthetic
            validation error exceeds :data:`QUALITY_WARNING_PCT` (the model
            is preliminary: its keypoints, and poses computed from them,
            are unreliable).
        """
        error = self.validation_error_pct
        name = self.object_class.name
        if error is None:
            return f'model {name}: no validation error recorded', False
        text = (f'model {name}: mean 2D error {error:.2f}% of the image diagonal on its '
                f'synthetic validation shards'
                + (' (of the float network this 8-bit copy was made from)'
                   if getattr(self.backend, 'int8', False) else ''))
        if error > QUALITY_WARNING_PCT:
            return (text + f' (above {QUALITY_WARNING_PCT:g}%: a preliminary model; its '
                    'keypoints and any pose computed from them are unreliable)'), True
        return text, False

    def _exported(self, backend: str) -> Optional[str]:
        """Return the checkpoint's ONNX file for onnxruntime, exported on first use.

        With ``backend`` ``'auto'`` a checkpoint that cannot be exported here
        (``onnx`` missing, cache folder not writable, export failing) runs in
        PyTorch instead (None, with a warning); with ``'onnxruntime'`` the
        error is raised.
        """
        if backend == 'onnxruntime':
            return onnx_model_for(self.model_path)
        try:
            return onnx_model_for(self.model_path, export=can_export())
        except (OSError, RuntimeError, ValueError) as e:
            warnings.warn(f'{self.model_path}: no ONNX export ({e}); running it in PyTorch',
                          RuntimeWarning)
            return None

    @property
    def input_size(self) -> Tuple[int, int]:
        """(width, height) of the network input, pixels."""
        return (self.config.input_width, self.config.input_height)

    def cell_size_px(self, window_width: int) -> float:
        """Side of one belief cell in image pixels, for a window (or image) this wide."""
        return self.config.stride * window_width / self.config.input_width

    def preprocess(self, images: Sequence[np.ndarray],
                   windows: Optional[Sequence[Optional[PixelWindow]]] = None) -> torch.Tensor:
        """Resize (H, W, 3) uint8 RGB (or (H, W) grey) images to the input size.

        Args:
            images: the images (not changed).
            windows: optional per-image (x0, y0, w, h) windows (None entries:
                whole image), cut out first (:func:`~.roi.network_view`).

        Returns:
            (B, 3, h_in, w_in) float32 normalized tensor on the device.  With
            the torch backend it is :func:`~.model.normalize_images`'s
            permuted (channels-last) view, which the stored reference outputs
            were computed with (PyTorch's convolutions differ in the last
            bits between memory formats); with onnxruntime a view of a NumPy
            array normalized without torch's thread pool
            (:func:`~.model.normalize_image_array`, the same values).
        """
        batch = []
        for n, img in enumerate(images):
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            batch.append(network_view(img, self.input_size,
                                      None if windows is None else windows[n]))
        if self.backend.name == 'onnxruntime':
            return torch.from_numpy(normalize_image_array(np.stack(batch)))
        return normalize_images(torch.from_numpy(np.stack(batch)).to(self.device))

    @torch.no_grad()
    def forward(self, batch: torch.Tensor, augment: bool = True) -> np.ndarray:
        """Last-stage belief maps of a preprocessed batch, with test-time augmentation.

        Args:
            batch: (B, 3, h_in, w_in) float32 tensor from :meth:`preprocess`.
            augment: False runs the batch once, without the augmentation
                (half the network time with one).

        Returns:
            (B, J, h, w) float32 belief maps; with ``'rot180'`` the mean of
            the batch's and its rotated copy's maps (one forward pass of 2B,
            :func:`~.heatmaps.merge_rotated_beliefs`), with ``'hflip'`` of
            its mirrored copy's (:func:`~.heatmaps.merge_mirrored_beliefs`).
        """
        if not augment:
            return self.backend.run(batch)
        if self.test_time_augmentation == 'rot180':  # flipped rows and columns
            direct, turned = self._two_looks(batch, (2, 3))
            return merge_rotated_beliefs(direct, turned, self.object_class.symmetries)
        if self.test_time_augmentation == 'hflip':  # flipped columns
            direct, mirrored = self._two_looks(batch, (3,))
            return merge_mirrored_beliefs(direct, mirrored, self.object_class.mirror)
        return self.backend.run(batch)

    def _two_looks(self, batch: torch.Tensor, dims: Tuple[int, ...]
                   ) -> Tuple[np.ndarray, np.ndarray]:
        """Belief maps of a (B, 3, h, w) batch and of its copy flipped along ``dims``.

        One forward pass of 2B; the flipped copy's maps are returned as the
        network gave them (not flipped back).
        """
        if self.backend.name == 'onnxruntime':  # in NumPy: no torch thread pool
            array = batch.numpy()
            flip = tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(4))
            both = torch.from_numpy(np.concatenate([array, array[flip]]))
        else:
            both = torch.cat([batch, torch.flip(batch, dims=dims)])
        out = self.backend.run(both)
        return out[:len(batch)], out[len(batch):]

    def infer(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Last-stage belief maps of whole images, (B, J, h, w) float32 (see :meth:`forward`)."""
        return self.forward(self.preprocess(images))

    def detect(self, images: Sequence[np.ndarray],
               peak_threshold: float = PipelineConfig.peak_threshold,
               roi_refinement: str = 'off',
               roi_scale: float = PipelineConfig.roi_scale,
               roi_augmentation: bool = PipelineConfig.roi_augmentation) -> List[ViewKeypoints]:
        """Detect keypoints in each image on its own (no stereo), optionally with a zoomed look.

        The first look runs the network on the whole images (one batch).
        With ``roi_refinement`` ``'always'`` (or ``'incomplete'``: only for
        images where the first look missed a keypoint), a second look runs
        on a window around each image's detected keypoints
        (:func:`~.roi.roi_around`, the crop step of top-down pose
        estimators, Xiao et al. 2018) and replaces the first look's result
        when it finds at least as many keypoints.  Images whose object
        already fills most of the image (no window with 1.25x the
        resolution) or with fewer than two keypoints found keep the first
        look.

        Args:
            images: (H, W, 3) uint8 RGB or (H, W) uint8 grey arrays; sizes may
                differ.
            peak_threshold: minimum belief of a detected keypoint.
            roi_refinement: ``'off'``, ``'incomplete'`` or ``'always'`` (as the
                node parameter of that name).
            roi_scale: window side over the keypoints' extent (> 1).
            roi_augmentation: the test-time augmentation in the second look
                too (False: half its network time).

        Returns:
            one :class:`~.views.ViewKeypoints` per image (the highest peak of
            each keypoint), in original pixels; ``roi`` is the window of the
            look that was kept (None: the whole image).

        Raises:
            ValueError: an unknown ``roi_refinement``.
        """
        if roi_refinement not in ROI_REFINEMENTS:
            raise ValueError(f'roi_refinement must be one of {ROI_REFINEMENTS}, '
                             f'got {roi_refinement!r}')
        symmetries = self.object_class.symmetries
        first = [decode_view(maps, PixelWindow.whole(img), symmetries, peak_threshold).best()
                 for maps, img in zip(self.infer(images), images)]
        if roi_refinement == 'off':
            return first
        windows = []
        for look, img in zip(first, images):
            wanted = roi_refinement == 'always' or not look.found.all()
            windows.append(roi_around(look.uv, (img.shape[1], img.shape[0]), self.input_size,
                                      roi_scale) if wanted else None)
        zoomed = [n for n, window in enumerate(windows) if window is not None]
        if not zoomed:
            return first
        beliefs = self.forward(self.preprocess([images[n] for n in zoomed],
                                               [windows[n] for n in zoomed]),
                               roi_augmentation)
        out = list(first)
        for n, maps in zip(zoomed, beliefs):
            second = decode_view(maps, windows[n], symmetries, peak_threshold,
                                 roi=windows[n]).best()
            if second.found.sum() >= first[n].found.sum():
                out[n] = second
        return out
