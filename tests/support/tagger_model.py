"""A tiny WD-style tagger built at test time: its probabilities follow the image's colours, so
the tags it gives are known in advance.

Input [batch, 64, 64, 3] BGR 0..255 -> per-channel means (b, g, r in 0..1) and their mean
(brightness) -> a linear layer -> sigmoid, one probability per row of selected_tags.csv.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SIZE = 64


def logit(p: float) -> float:
    return math.log(p / (1 - p))


# (name, category, weights on (b, g, r, brightness), bias)
TAGS: list[tuple[str, int, tuple[float, float, float, float], float]] = [
    ("general", 9, (0, 0, 0, 12), -6),  # bright images
    ("sensitive", 9, (0, 0, 0, 0), -2),
    ("questionable", 9, (0, 0, 0, -12), 5),  # dark images
    ("explicit", 9, (0, 0, 0, 0), -5),
    ("red_theme", 0, (0, 0, 20, 0), -12),  # mean red > 0.6
    ("green_theme", 0, (0, 20, 0, 0), -12),
    ("blue_theme", 0, (20, 0, 0, 0), -12),
    ("white_background", 0, (0, 0, 0, 30), -27),  # brightness > 0.9
    ("solo", 0, (0, 0, 0, 0), logit(0.5)),
    ("long_hair", 0, (0, 0, 0, 0), logit(0.30)),  # between the v3 (0.27) and v2 (0.35) default
    ("^_^", 0, (0, 0, 0, 0), logit(0.6)),
    ("smile", 0, (0, 0, 0, 0), logit(0.2)),
    ("simple_background", 0, (0, 0, 0, 0), logit(0.4)),
    ("hatsune_miku", 4, (0, 20, 0, 0), -10),  # green images
    ("kagamine_rin", 4, (0, 0, 0, 0), logit(0.8)),  # below the 0.85 character default
    ("megurine_luka", 4, (0, 0, 0, 0), logit(0.9)),  # above it: on every image
]
P_CONST = {"solo": 0.5, "long hair": 0.30, "^_^": 0.6, "smile": 0.2, "simple background": 0.4,
           "kagamine rin": 0.8, "megurine luka": 0.9, "sensitive": 1 / (1 + math.e ** 2)}


def tags_csv(tags=TAGS) -> str:
    rows = ["tag_id,name,category,count"]
    rows += [f"{1000 + i},{name},{cat},{500 - i}" for i, (name, cat, _, _) in enumerate(tags)]
    return "\n".join(rows) + "\n"


def build_model(tags=TAGS, *, size: int = SIZE, layout: str = "nhwc", outputs: int | None = None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = len(tags) if outputs is None else outputs
    w = np.zeros((4, n), np.float32)
    b = np.zeros(n, np.float32)
    for i, (_, _, weights, bias) in enumerate(tags[:n]):
        w[:, i] = weights
        b[i] = bias
    axes = [1, 2] if layout == "nhwc" else [2, 3]
    shape = ["batch", size, size, 3] if layout == "nhwc" else ["batch", 3, size, size]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["means"], axes=axes, keepdims=0),
        helper.make_node("Mul", ["means", "scale"], ["bgr"]),
        helper.make_node("ReduceMean", ["bgr"], ["bright"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["bgr", "bright"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    graph = helper.make_graph(
        nodes, "tiny-tagger",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_tagger(folder: Path, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(build_model(**kwargs))
    (folder / "selected_tags.csv").write_text(tags_csv(), encoding="utf-8")
    return folder
