"""The dataset side of a LoRA's header, as kohya's train_network.py writes it for a run from a
`--dataset_config` (which is what lorabake's kohya export produces): `ss_datasets` (one
dataset with its subsets, tag frequencies and buckets), `ss_tag_frequency`,
`ss_dataset_dirs`, the regularization count, and the bucket table.

Every number comes from the training plan (folders, repeats, buckets) or from the captions the
trainer read; nothing here recounts steps.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..core.buckets.assign import BucketReport, bucket_resolutions
from ..core.config.schema import TrainingSettings
from ..core.images.media import KOHYA_IMAGE_EXTS
from ..core.project.plan import PlannedConcept, TrainingPlan
from .data import TrainData


def img_count(pc: PlannedConcept) -> int:
    """kohya's subset img_count: the folder's files with an image extension it reads."""
    return sum(1 for im in pc.concept.images if im.ext in KOHYA_IMAGE_EXTS)


def num_reg_images(plan: TrainingPlan) -> int:
    """kohya's ss_num_reg_images: regularization images times their folder's repeats, counted
    before they are matched to the training samples."""
    return sum(pc.repeats * img_count(pc) for pc in plan.concepts if pc.concept.is_reg)


def tag_frequency(data: TrainData) -> dict[str, dict[str, int]]:
    """Per folder (regularization folders too), how often each tag occurs in the captions:
    every occurrence counts, lower-cased, repeats ignored, as kohya counts them."""
    out: dict[str, Counter] = {}
    for s in data.samples:
        tags = (t.strip().lower() for t in s.caption.split(","))
        out.setdefault(s.folder, Counter()).update(t for t in tags if t)
    return {k: dict(v) for k, v in out.items()}


def dataset_dirs(plan: TrainingPlan) -> dict[str, dict[str, int]]:
    """ss_dataset_dirs: per training folder (not regularization) its repeats and image
    count; a folder name seen twice gets " (2)", as kohya names it."""
    out: dict[str, dict[str, int]] = {}
    for pc in plan.concepts:
        if pc.concept.is_reg:
            continue
        name, i = pc.concept.folder, 2
        while name in out:
            name, i = f"{pc.concept.folder} ({i})", i + 1
        out[name] = {"n_repeats": pc.repeats, "img_count": img_count(pc)}
    return out


def bucket_info(s: TrainingSettings, report: BucketReport) -> dict[str, Any] | None:
    """kohya's bucket table: the buckets in use under their index in its bucket list (the
    predefined buckets, or with no_upscale the buckets in use, sorted), each with its samples
    (repeats included), and the mean aspect-ratio error. None with buckets off, as kohya."""
    if not s.buckets.enable:
        return None
    st = report.settings
    resos = sorted(report.buckets) if st.no_upscale else \
        bucket_resolutions(st.resolution, st.min_reso, st.max_reso, st.step)
    index = {r: i for i, r in enumerate(resos)}
    buckets = {str(index[r]): {"resolution": list(r), "count": report.samples(r)}
               for r in sorted(report.buckets, key=index.__getitem__)}
    return {"buckets": buckets, "mean_img_ar_error": report.mean_ar_error}


def datasets(s: TrainingSettings, plan: TrainingPlan, tags: dict[str, dict[str, int]],
             buckets: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ss_datasets: the one DreamBooth-style dataset of the run, keys in kohya's order."""
    d, b = s.data, plan.buckets
    subsets = []
    for pc in plan.concepts:
        subsets.append({
            "img_count": img_count(pc), "num_repeats": pc.repeats,
            "color_aug": d.color_aug, "flip_aug": d.flip_aug, "random_crop": d.random_crop,
            "shuffle_caption": d.shuffle_caption, "keep_tokens": d.keep_tokens,
            "keep_tokens_separator": d.keep_tokens_separator, "secondary_separator": None,
            "enable_wildcard": False, "caption_prefix": None, "caption_suffix": None,
            "resize_interpolation": None, "image_dir": pc.concept.folder,
            "class_tokens": pc.concept.name or None, "is_reg": pc.concept.is_reg,
        })
    enable = s.buckets.enable and b is not None
    return [{
        "is_dreambooth": True,
        "batch_size_per_device": s.general.batch_size,
        "num_train_images": plan.train_samples,
        "num_reg_images": num_reg_images(plan),
        "resolution": [s.buckets.resolution, s.buckets.resolution],
        "enable_bucket": s.buckets.enable,
        "min_bucket_reso": b.min_reso if enable else None,
        "max_bucket_reso": b.max_reso if enable else None,
        "tag_frequency": tags,
        "bucket_info": buckets,
        "resize_interpolation": None,
        "subsets": subsets,
    }]
