"""Finding and opening a WD1.4 / WD v3 tagger: a folder with `model.onnx` and
`selected_tags.csv`, given as a path or as a Hugging Face repo id found in the local cache.

Nothing is downloaded unless the caller asks (`download=True`, the CLI's `--download`), and then
only through `huggingface_hub` when it is installed. The input size is read from the model
(NHWC `[batch, H, W, 3]`), so a tagger trained at another size works as is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import LorabakeError

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"

# selected_tags.csv categories
RATING, GENERAL, CHARACTER = 9, 0, 4

# Default thresholds. v3 models are calibrated lower (SmilingWolf publishes the P=R point of
# each, ~0.26-0.27); eva02-large v3 sits much higher. Character tags are kept only when sure.
V2_GENERAL = 0.35
V3_GENERAL = 0.27
EVA02_LARGE_V3_GENERAL = 0.53
CHARACTER_DEFAULT = 0.85


@dataclass(frozen=True, slots=True)
class ModelFiles:
    name: str  # repo id or folder name: what the user recognises (and what picks defaults)
    folder: Path
    onnx: Path
    tags_csv: Path


@dataclass(frozen=True, slots=True)
class TagTable:
    names: tuple[str, ...]
    categories: np.ndarray  # int16, one per name

    def __len__(self) -> int:
        return len(self.names)


def default_thresholds(name: str) -> tuple[float, float]:
    """(general, character) for a model, from its name."""
    n = name.lower()
    if "v3" in n:
        return (EVA02_LARGE_V3_GENERAL if "eva02-large" in n else V3_GENERAL), CHARACTER_DEFAULT
    return V2_GENERAL, CHARACTER_DEFAULT


# ---- locating the model --------------------------------------------------------------------

def hub_cache_dirs() -> list[Path]:
    """Where huggingface_hub keeps downloads, most specific setting first."""
    out: list[Path] = []
    if os.environ.get("HF_HUB_CACHE"):
        out.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        out.append(Path(xdg) / "huggingface" / "hub")
    out.append(Path.home() / ".cache" / "huggingface" / "hub")
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def looks_like_repo_id(spec: str) -> bool:
    parts = spec.split("/")
    return (len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))
            and not any(c in spec for c in "\\:"))


def _folder_files(name: str, folder: Path) -> ModelFiles:
    onnx, tags = folder / MODEL_FILE, folder / TAGS_FILE
    missing = [p.name for p in (onnx, tags) if not p.is_file()]
    if missing:
        raise LorabakeError(f"{folder}: no {' and no '.join(missing)} in the model folder",
                            f"a tagger folder holds {MODEL_FILE} and {TAGS_FILE}")
    return ModelFiles(name, folder, onnx, tags)


def find_in_hub_cache(repo_id: str, dirs: list[Path] | None = None) -> ModelFiles | None:
    """The snapshot of `repo_id` that `refs/main` names, else the newest complete one."""
    owner, name = repo_id.split("/")
    for hub in dirs if dirs is not None else hub_cache_dirs():
        repo = hub / f"models--{owner}--{name}"
        snaps = repo / "snapshots"
        if not snaps.is_dir():
            continue
        candidates: list[Path] = []
        try:
            ref = (repo / "refs" / "main").read_text("utf-8").strip()
            candidates.append(snaps / ref)
        except OSError:
            pass
        others = [p for p in snaps.iterdir() if p.is_dir() and p not in candidates]
        candidates += sorted(others, key=lambda p: p.stat().st_mtime, reverse=True)
        for snap in candidates:
            if (snap / MODEL_FILE).is_file() and (snap / TAGS_FILE).is_file():
                return ModelFiles(repo_id, snap, snap / MODEL_FILE, snap / TAGS_FILE)
    return None


def _download(repo_id: str) -> ModelFiles:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise LorabakeError(f"cannot download {repo_id}: huggingface_hub is not installed",
                            "pip install huggingface_hub, or pass a local model folder") from None
    try:
        onnx = Path(hf_hub_download(repo_id, MODEL_FILE))
        hf_hub_download(repo_id, TAGS_FILE)
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: one message
        raise LorabakeError(f"cannot download {repo_id}: {str(exc).splitlines()[0]}",
                            "check the repo id and the network, or pass a local folder") from exc
    return _folder_files(repo_id, onnx.parent)


def resolve_model(spec: str, *, download: bool = False) -> ModelFiles:
    """A model folder, a `model.onnx` path, or a repo id (`SmilingWolf/wd-vit-tagger-v3`)."""
    spec = spec.strip()
    if not spec:
        raise LorabakeError("no tagger model given",
                            "give a folder with model.onnx and selected_tags.csv, or a repo id")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_files(path.resolve().name, path.resolve())
    if path.is_file() and path.suffix == ".onnx":
        folder = path.resolve().parent
        tags = folder / TAGS_FILE
        if not tags.is_file():
            raise LorabakeError(f"{tags}: not found beside {path.name}",
                                f"the tag list {TAGS_FILE} must sit next to the model")
        return ModelFiles(folder.name, folder, path.resolve(), tags)
    if looks_like_repo_id(spec) and not path.exists():
        found = find_in_hub_cache(spec)
        if found is not None:
            return found
        if download:
            return _download(spec)
        where = ", ".join(str(d) for d in hub_cache_dirs())
        raise LorabakeError(f"tagger {spec} is not in the Hugging Face cache ({where})",
                            "pass a local folder, or allow a download (--download)")
    raise LorabakeError(f"tagger model {spec}: no such folder or file",
                        "give a folder with model.onnx and selected_tags.csv, or a repo id")


# ---- the tag list ------------------------------------------------------------------------

def read_tags_csv(path: Path) -> TagTable:
    """selected_tags.csv: columns tag_id,name,category,count (only name and category used)."""
    try:
        text = Path(path).read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LorabakeError(f"{path}: not UTF-8 text (byte {exc.start})",
                            "is this really the tagger's selected_tags.csv?") from None
    except OSError as exc:
        raise LorabakeError(f"{path}: cannot read: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "name" not in header or "category" not in header:
        raise LorabakeError(f"{path}: the header has no 'name' and 'category' columns",
                            "expected tag_id,name,category,count")
    ni, ci = header.index("name"), header.index("category")
    names: list[str] = []
    cats: list[int] = []
    for line, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            name, cat = row[ni].strip(), int(row[ci])
        except IndexError:
            raise LorabakeError(f"{path}: line {line} has {len(row)} column(s)",
                                "expected tag_id,name,category,count") from None
        except ValueError:
            raise LorabakeError(f"{path}: line {line}: category {row[ci]!r} is not a number",
                                "expected tag_id,name,category,count") from None
        if not name:
            raise LorabakeError(f"{path}: line {line} has an empty tag name")
        names.append(name)
        cats.append(cat)
    if not names:
        raise LorabakeError(f"{path}: no tags in the file")
    return TagTable(tuple(names), np.asarray(cats, dtype=np.int16))


def fingerprint(files: ModelFiles) -> str:
    """Identifies the model and tag list (for the result cache) without hashing the weights."""
    st = files.onnx.stat()
    h = hashlib.sha256(f"{files.onnx.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(files.tags_csv.read_bytes())
    return h.hexdigest()[:16]


# ---- the ONNX session ----------------------------------------------------------------------

def pick_providers(device: str = "auto") -> list[str]:
    """CUDA when onnxruntime has it (onnxruntime-gpu) and the caller allows, else CPU."""
    import onnxruntime as ort

    if device not in ("auto", "cpu", "cuda"):
        raise LorabakeError(f"unknown device {device!r}", "use auto, cpu or cuda")
    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise LorabakeError("onnxruntime has no CUDA provider here",
                            "install onnxruntime-gpu with a matching CUDA, or use the CPU")
    return ["CPUExecutionProvider"]


class TaggerModel:
    """An opened tagger: the ONNX session, its input size and its tag list."""

    def __init__(self, files: ModelFiles, *, device: str = "auto",
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        self.files = files
        self.name = files.name
        self.tags = read_tags_csv(files.tags_csv)
        self.default_general, self.default_character = default_thresholds(files.name)
        opts = ort.SessionOptions()
        # decoding threads share the cores with inference: idle ORT workers must sleep, not
        # spin, or they steal the time the decoders need
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(files.onnx), opts,
                                                providers=pick_providers(device))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise LorabakeError(f"{files.onnx}: not a usable ONNX model ({reason[:200]})",
                                "re-download the tagger; the file may be truncated") from None
        self.providers = self.session.get_providers()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if (len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int)
                or shape[1] != shape[2] or "float" not in inp.type):
            raise LorabakeError(
                f"{files.onnx}: input {inp.name} is {inp.type} {shape}; a tagger takes float "
                "images as [batch, size, size, 3] (NHWC)",
                "this is not a WD1.4/WD v3 tagger model")
        self.size = int(shape[1])
        # a model exported with a fixed batch of 1 takes one image per run
        self.max_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        out = self.session.get_outputs()[0]
        n_out = out.shape[-1] if out.shape else None
        if isinstance(n_out, int) and n_out != len(self.tags):
            raise LorabakeError(
                f"{files.onnx} predicts {n_out} tags but {files.tags_csv} lists "
                f"{len(self.tags)}", "the model and its tag list come from different taggers")

    @property
    def on_gpu(self) -> bool:
        return self.providers[:1] == ["CUDAExecutionProvider"]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [n, tags] for images prepared by `tagger_input.prepare_image`."""
        (probs,) = self.session.run(None, {self.input_name: batch})[:1]
        probs = np.asarray(probs, dtype=np.float32).reshape(len(batch), -1)
        if probs.shape[1] != len(self.tags):
            raise LorabakeError(
                f"{self.files.onnx} predicted {probs.shape[1]} values per image but "
                f"{self.files.tags_csv} lists {len(self.tags)} tags",
                "the model and its tag list come from different taggers")
        return probs
