"""Buckets exactly as kohya: the reference's worked examples, and invariants for any input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorabake_tui.core.base.errors import LorabakeError
from lorabake_tui.core.buckets.assign import (
    Bucketer,
    BucketSettings,
    assign_all,
    bucket_resolutions,
)
from lorabake_tui.core.dataset.steps import reg_repeats, reg_samples

from ...support.helpers import make_concept
from ...support.plans import plan_of

DEFAULT = BucketSettings()
NO_UPSCALE = BucketSettings(no_upscale=True)


def test_the_17_buckets_at_512():
    assert bucket_resolutions((512, 512), 256, 1024, 64) == [
        (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640),
        (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256),
        (896, 256), (960, 256), (1024, 256)]


@pytest.mark.parametrize(("size", "settings", "bucket", "resized"), [
    ((1920, 1080), DEFAULT, (640, 384), (683, 384)),
    ((1920, 1080), NO_UPSCALE, (640, 384), (683, 384)),
    ((300, 1000), DEFAULT, (256, 832), (256, 853)),
    ((512, 768), DEFAULT, (384, 640), None),
    ((512, 768), NO_UPSCALE, (384, 576), None),
    ((400, 400), DEFAULT, (512, 512), (512, 512)),
    ((400, 400), NO_UPSCALE, (384, 384), (400, 400)),
    ((512, 512), DEFAULT, (512, 512), (512, 512)),
    ((576, 448), DEFAULT, (576, 448), (576, 448)),  # an exact bucket size is kept as is
])
def test_reference_worked_examples(size, settings, bucket, resized):
    a = Bucketer(settings).assign(*size)
    assert a.bucket == bucket
    if resized is not None:
        assert a.resized == resized


def test_crop_box_is_kohyas_centre_crop():
    a = Bucketer(DEFAULT).assign(1920, 1080)
    assert a.crop_box() == (21, 0, 661, 384)  # (683 - 640) // 2 = 21


def test_side_below_step_in_no_upscale_is_reported_not_crashed():
    a = Bucketer(NO_UPSCALE).assign(50, 400)
    assert a.bucket is None and "below the bucket step 64" in a.error


def test_min_max_rounded_to_step_and_checked():
    s = BucketSettings(min_reso=300, max_reso=1000).adjusted()
    assert (s.min_reso, s.max_reso) == (256, 1024)
    with pytest.raises(LorabakeError, match="min bucket size"):
        BucketSettings(min_reso=640).adjusted()
    with pytest.raises(LorabakeError, match="max bucket size"):
        BucketSettings(resolution=(768, 768), max_reso=640).adjusted()


def test_batches_per_epoch_round_up_per_bucket():
    items = [("a", (512, 512), 3), ("b", (512, 512), 2), ("c", (1920, 1080), 3)]
    r = assign_all(items, BucketSettings(batch_size=2))
    # bucket 512x512: 5 samples -> 3 batches; 640x384: 3 samples -> 2 batches
    assert r.batches_per_epoch == 5
    assert r.batches_per_epoch != math.ceil(8 / 2)  # not images*repeats/batch
    assert [(k, n, s) for k, n, s in
            [(k, len(v), r.samples(k)) for k, v in sorted(r.buckets.items())]] == [
        ((512, 512), 2, 5), ((640, 384), 1, 3)]
    data = r.to_json()
    assert data["batches_per_epoch"] == 5
    assert data["buckets"][0] == {"resolution": [512, 512], "images": 2, "samples": 5}


def test_warnings():
    items = [(f"i{n}", (512, 512), 1) for n in range(4)] + [("odd", (300, 1000), 1),
                                                            ("tiny", (100, 100), 1)]
    w = "\n".join(assign_all(items, BucketSettings(batch_size=2)).warnings())
    assert "fewer samples than the batch size 2" in w
    assert "upscaled more than 2x" in w


def test_reg_repeats_match_kohya_loop():
    assert reg_repeats(10, [1] * 4) == [3, 3, 2, 2]
    assert sum(reg_repeats(10, [1] * 4)) == reg_samples(10, [(4, 1)])
    assert reg_repeats(3, [1] * 5) == [1, 1, 1, 0, 0]  # surplus reg images are unused
    assert reg_repeats(10, [3] * 5) == [3, 3, 3, 3, 0]


def test_the_plan_trains_what_kohya_trains(tmp_path):
    root = tmp_path / "train"
    make_concept(root, "2_a", 3, size=(512, 768))
    make_concept(root, "misc", 2)  # skipped by kohya: no repeat prefix
    plan = plan_of(root)
    assert [(i.key, i.size, i.repeats) for i in plan.images][:1] == [
        ("2_a/img_000.png", (512, 768), 2)]
    assert len(plan.images) == 3 and plan.train_samples == 6
    assert len(plan.left_out) == 2 and "no repeat prefix" in plan.left_out[0]


sizes = st.integers(min_value=1, max_value=6000)


@settings(max_examples=300, deadline=None)
@given(w=sizes, h=sizes, res=st.sampled_from([(512, 512), (768, 768), (512, 768), (640, 448)]),
       step=st.sampled_from([8, 32, 64]), no_upscale=st.booleans())
def test_invariants_for_any_size(w, h, res, step, no_upscale):
    s = BucketSettings(resolution=res, min_reso=256, max_reso=1024, step=step,
                       no_upscale=no_upscale)
    bucketer = Bucketer(s)
    a = bucketer.assign(w, h)
    area = res[0] * res[1]
    if a.bucket is None:
        assert no_upscale and min(a.resized) < step  # only the documented failure
        return
    bw, bh = a.bucket
    rw, rh = a.resized
    assert bw % step == 0 and bh % step == 0
    # the resized image covers the bucket: kohya crops, never pads
    assert rw >= bw and rh >= bh
    assert (rw - bw) < max(rw, 1) and (rh - bh) < max(rh, 1)
    if no_upscale:
        # about the training area: kohya rounds each side to the step, which can land up to
        # one step above it (e.g. 102x3179 at 640x448, step 8 -> 96x2992), as kohya does
        assert bw * bh <= area + step * max(bw, bh)
        assert rw <= max(w, bw + step) and rh <= max(h, bh + step)  # no upscaling
        assert bw <= rw < bw + step or bh <= rh < bh + step
    else:
        assert a.bucket in bucketer.reso_set
        # nearest aspect ratio among the predefined buckets
        ar = w / h
        best = min(abs(x / y - ar) for x, y in bucketer.resos)
        assert abs(bw / bh - ar) == pytest.approx(best)
        # one side fits exactly (up to rounding), the other is cropped
        assert rw == bw or rh == bh or abs(rw - bw) <= 1 or abs(rh - bh) <= 1
    left, top, right, bottom = a.crop_box()
    assert (right - left, bottom - top) == a.bucket
    assert left >= 0 and top >= 0 and right <= rw and bottom <= rh


@settings(max_examples=100, deadline=None)
@given(res=st.integers(min_value=4, max_value=16).map(lambda n: n * 64),
       step=st.sampled_from([32, 64]))
def test_predefined_buckets_stay_within_area_and_limits(res, step):
    resos = bucket_resolutions((res, res), 256, 2048, step)
    assert resos == sorted(set(resos))
    for w, h in resos:
        assert w * h <= res * res
        assert min(w, h) >= 256 or (w, h) == (res // step * step,) * 2
        assert (w, h)[::-1] in resos  # symmetric


def test_an_exif_rotated_image_is_bucketed_by_its_stored_size(tmp_path):
    # kohya reads sizes with imagesize (no EXIF), so a 640x320 photo that viewers show as
    # portrait goes into a landscape bucket: the trainer must then train the stored pixels
    from ...support.helpers import make_exif_rotated

    make_exif_rotated(tmp_path / "3_a" / "phone.jpg", (640, 320), orientation=6)
    items = [(i.key, i.size, i.repeats) for i in plan_of(tmp_path).images]
    assert items == [("3_a/phone.jpg", (640, 320), 3)]
    a = assign_all(items, DEFAULT).images[0].assignment
    assert (a.bucket, a.resized) == ((704, 320), (704, 352))
