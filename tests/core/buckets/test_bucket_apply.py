"""Applying a bucket recommendation: exact sizes, originals kept, undo byte for byte."""

from __future__ import annotations

from PIL import Image

from lorabake_tui.core.base.journal import Journal
from lorabake_tui.core.buckets.apply import apply_bucket_plan
from lorabake_tui.core.buckets.assign import BucketSettings
from lorabake_tui.core.buckets.recommend import crop_fraction, recommend
from lorabake_tui.core.images.imageops import resize_to_bucket

from ...support.helpers import make_image
from ...support.plans import plan_items


def test_cover_crop_sizes():
    assert resize_to_bucket(Image.new("RGB", (1920, 1080)), 640, 384).size == (640, 384)
    assert resize_to_bucket(Image.new("RGB", (300, 1000)), 256, 832).size == (256, 832)


def test_recommendation_prefers_few_buckets_with_least_crop():
    items = [(f"p{i}", (512, 768), 1) for i in range(10)] + \
            [(f"l{i}", (768, 512), 1) for i in range(10)] + [("sq", (600, 600), 1)]
    plan = recommend(items, BucketSettings(), 2)
    assert plan.buckets == [(384, 640), (640, 384)]
    assert all(i.crop == crop_fraction(i.size, i.bucket) for i in plan.images)
    assert recommend(items, BucketSettings(), 3).mean_crop < plan.mean_crop


def test_apply_keeps_originals_and_undo_restores(tmp_path):
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.jpg", (1920, 1080), "JPEG")
    make_image(root / "2_a" / "b.png", (512, 512))
    (root / "2_a" / "a.txt").write_text("mira\n")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    items = plan_items(root)
    plan = recommend(items, BucketSettings(), 2)
    result = apply_bucket_plan(root, plan)
    assert result.written == ["2_a/a.png"]  # b.png already is its bucket's size
    with Image.open(root / "2_a" / "a.png") as im:
        assert im.size == (640, 384)
    assert not (root / "2_a" / "a.jpg").exists()
    assert (root / ".lorabake/originals/2_a/a.jpg").read_bytes() == before[root / "2_a/a.jpg"]
    Journal(root).undo()
    now = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".lorabake" not in p.parts}
    assert now == before


def test_name_collision_is_skipped(tmp_path):
    root = tmp_path / "ds"
    make_image(root / "2_a" / "a.jpg", (1920, 1080), "JPEG")
    make_image(root / "2_a" / "a.png", (640, 384))
    items = plan_items(root)
    result = apply_bucket_plan(root, recommend(items, BucketSettings(), 1))
    assert result.entry is None and "already exists" in result.skipped[0]
