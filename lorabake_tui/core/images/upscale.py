"""Upscale small images: a super-resolution ONNX model run in tiles, or plain Lanczos.

The model contract is the common one of ESRGAN-style exports: one input, NCHW float32 (or
float16) RGB in 0..1; one output of the same layout whose height and width are an integer
multiple of the input's (the scale, read from the first tile). Inputs with a fixed height and
width are fed tiles of exactly that size (edge-padded). onnxruntime is imported only here and
only when a model is loaded; the CUDA execution provider is used when onnxruntime offers it.

Tiling: the image is cut into core tiles of `tile` pixels; each is run with `overlap` pixels
of real context on every side (less at the image border), and only the upscaled core is kept,
so seams get the context a whole-image run would give them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..base.errors import LorabakeError
from .imageops import LANCZOS, min_side_size

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 16
MAX_PASSES = 3  # a 2x model on a 100 px image needs 3 passes to pass 512

RunTile = Callable[[np.ndarray], np.ndarray]  # NCHW float in 0..1 -> NCHW float


class UpscalerError(LorabakeError):
    pass


class Upscaler:
    """A loaded model (an onnxruntime session, or anything with the same `run`,
    `get_inputs` and `get_outputs`)."""

    def __init__(self, session, *, name: str = "model", provider: str = "CPU") -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise UpscalerError(f"{name}: the model has {len(inputs)} inputs, not one image input")
        spec = inputs[0]
        shape = list(spec.shape or [])
        if len(shape) != 4:
            raise UpscalerError(f"{name}: the input is not NCHW (shape {shape})")
        if isinstance(shape[1], int) and shape[1] != 3:
            raise UpscalerError(f"{name}: the input has {shape[1]} channels, not 3 (RGB)")
        kind = str(getattr(spec, "type", "tensor(float)"))
        if kind not in ("tensor(float)", "tensor(float16)"):
            raise UpscalerError(f"{name}: the input type is {kind}, not float32/float16")
        self.session = session
        self.name = name
        self.provider = provider
        self.input_name = spec.name
        self.output_name = session.get_outputs()[0].name
        self.dtype = np.float16 if kind == "tensor(float16)" else np.float32
        h, w = shape[2], shape[3]
        self.fixed_hw = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 \
            else None

    def run_tile(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: x.astype(self.dtype)})[0]
        return np.asarray(out, dtype=np.float32)

    def upscale(self, image: Image.Image, *, tile: int = DEFAULT_TILE,
                overlap: int = DEFAULT_OVERLAP) -> Image.Image:
        """One pass of the model over an RGB image (scale x its size)."""
        arr = np.asarray(image.convert("RGB"))
        out = run_tiled(self.run_tile, arr, tile=tile, overlap=overlap, fixed_hw=self.fixed_hw,
                        name=self.name)
        return Image.fromarray(out, "RGB")


def _tile_starts(length: int, core: int) -> list[int]:
    return list(range(0, length, core))


def run_tiled(run: RunTile, arr: np.ndarray, *, tile: int = DEFAULT_TILE,
              overlap: int = DEFAULT_OVERLAP, fixed_hw: tuple[int, int] | None = None,
              name: str = "model") -> np.ndarray:
    """Upscale an HxWx3 uint8 array with `run` tile by tile; returns the (sH)x(sW)x3 uint8
    result, s being the model's scale."""
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("expected an HxWx3 array")
    if overlap < 0:
        raise ValueError("overlap must be >= 0")
    h, w = arr.shape[:2]
    if fixed_hw is not None:
        core_h, core_w = fixed_hw[0] - 2 * overlap, fixed_hw[1] - 2 * overlap
        if core_h < 1 or core_w < 1:
            raise UpscalerError(f"{name}: overlap {overlap} leaves nothing of its fixed "
                                f"{fixed_hw[1]}x{fixed_hw[0]} input; use a smaller --overlap")
    else:
        if tile < 1:
            raise ValueError("tile must be >= 1")
        core_h = core_w = tile
    src = arr.astype(np.float32) / 255.0
    scale: int | None = None
    result: np.ndarray | None = None
    for y0 in _tile_starts(h, core_h):
        for x0 in _tile_starts(w, core_w):
            y1, x1 = min(y0 + core_h, h), min(x0 + core_w, w)
            ey0, ex0 = max(0, y0 - overlap), max(0, x0 - overlap)
            ey1, ex1 = min(h, y1 + overlap), min(w, x1 + overlap)
            piece = src[ey0:ey1, ex0:ex1]
            if fixed_hw is not None:
                piece = _pad_to(piece, fixed_hw)
            x = np.ascontiguousarray(piece.transpose(2, 0, 1)[None])
            out = run(x)
            if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] != 3:
                raise UpscalerError(f"{name}: the output shape {tuple(out.shape)} is not "
                                    "1x3xHxW")
            s = _scale_of(x.shape, out.shape, name)
            if scale is None:
                scale = s
                result = np.zeros((h * s, w * s, 3), dtype=np.float32)
            elif s != scale:
                raise UpscalerError(f"{name}: the scale changed between tiles ({scale} "
                                    f"then {s})")
            oy, ox = (y0 - ey0) * s, (x0 - ex0) * s
            core = out[0, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
            assert result is not None
            result[y0 * s:y1 * s, x0 * s:x1 * s] = core.transpose(1, 2, 0)
    assert result is not None
    return np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)


def _pad_to(piece: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    ph, pw = hw[0] - piece.shape[0], hw[1] - piece.shape[1]
    if ph == 0 and pw == 0:
        return piece
    return np.pad(piece, ((0, ph), (0, pw), (0, 0)), mode="edge")


def _scale_of(in_shape, out_shape, name: str) -> int:
    sh, rh = divmod(out_shape[2], in_shape[2])
    sw, rw = divmod(out_shape[3], in_shape[3])
    if rh or rw or sh != sw or sh < 1:
        raise UpscalerError(
            f"{name}: output {out_shape[3]}x{out_shape[2]} is not an integer multiple of the "
            f"input {in_shape[3]}x{in_shape[2]}")
    return sh


def upscale_to_min_side(image: Image.Image, min_side: int, upscaler: Upscaler | None = None,
                        *, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
                        ) -> Image.Image:
    """Enlarge so the short side is `min_side`: model passes until it is at least that long
    (at most MAX_PASSES), then Lanczos to the exact size; without a model, Lanczos only."""
    target = min_side_size(image.width, image.height, min_side)
    if target == image.size:
        return image.copy()
    current = image
    if upscaler is not None:
        for _ in range(MAX_PASSES):
            if min(current.size) >= min_side:
                break
            current = upscaler.upscale(current, tile=tile, overlap=overlap)
    if current.size == target:
        return current
    return current.resize(target, LANCZOS)


# ---- loading --------------------------------------------------------------------------------

_SESSIONS: dict[tuple[str, int | None], Upscaler] = {}


def load_upscaler(path: Path | str, *, threads: int | None = None) -> Upscaler:
    """Load (once per process) a super-resolution ONNX model; one-line errors for a missing
    file, a file that is not ONNX, or a model that does not take one RGB image."""
    p = Path(path)
    key = (str(p.resolve()), threads)
    hit = _SESSIONS.get(key)
    if hit is not None:
        return hit
    if not p.is_file():
        raise UpscalerError(f"upscaler model {p} does not exist", "give a .onnx file")
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise UpscalerError("onnxruntime is not installed", "pip install onnxruntime") from exc
    available = ort.get_available_providers()
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                 if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no provider chatter on the terminal
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(p), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise UpscalerError(f"cannot load upscaler model {p}: {reason}",
                            "it must be an ONNX super-resolution model") from None
    used = session.get_providers()[0] if session.get_providers() else "CPUExecutionProvider"
    upscaler = Upscaler(session, name=p.name, provider=used.replace("ExecutionProvider", ""))
    _SESSIONS[key] = upscaler
    return upscaler
