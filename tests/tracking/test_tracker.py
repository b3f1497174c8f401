"""The online tracker: boxes inside the image, one compilation per frame size, all three modes."""

import functools

import jax
import numpy as np
import pytest
from jax.interpreters import partial_eval as pe

from input_pipeline import sources, synthetic
from lgtrack_jax.evaluation.runner import Frames
from lgtrack_jax.models import lgtrack
from lgtrack_jax.modes import Mode
from lgtrack_jax.ops import boxes as box_ops
from lgtrack_jax.ops import crop
from lgtrack_jax.tokenizer import Tokenizer
from lgtrack_jax.tracking.tracker import (Job, LGTracker, StaticTracker, pad_frames,
                                          window_frames, window_side)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, num_train=1, num_test=1, num_frames=12, seed=3)
  return sources.load("synthetic", root, "test")[0]


@pytest.fixture(scope="module")
def mixed_jobs(tmp_path_factory):
  """Five jobs: two frame sizes that fall in two different buckets, lengths 3 to 12."""
  jobs = []
  for size, seed in (((192, 144), 3), ((100, 60), 4)):
    root = str(tmp_path_factory.mktemp(f"synthetic{seed}"))
    synthetic.generate(root, num_train=0, num_test=3, num_frames=12, seed=seed, image_size=size)
    jobs += sources.load("synthetic", root, "test")
  jobs = jobs[:5]
  lengths = [12, 5, 9, 3, 7]
  return [Job(s.name, [s.load_frame(i) for i in range(n)], s.boxes[0], s.sentence)
          for s, n in zip(jobs, lengths)]


@pytest.fixture(scope="module")
def tracker():
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  return LGTracker(model, params, config, Tokenizer(config.model.text.tokenizer,
                                                    config.model.text.max_len))


@pytest.mark.parametrize("mode", ["nl_bbox", "bbox", "nl"])
def test_tracks_inside_the_image(tracker, sequence, mode):
  init = None if mode == "nl" else sequence.boxes[0]
  compiled = tracker._step._cache_size()  # pylint: disable=protected-access
  boxes, times = tracker.track(Frames(sequence), init, sequence.sentence, mode)
  h, w = sequence.load_frame(0).shape[:2]
  assert boxes.shape == (len(sequence), 4) and times.shape == (len(sequence),)
  assert np.all(np.isfinite(boxes)) and np.all(times >= 0)
  assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] >= 1)
  assert np.all(boxes[:, 0] + boxes[:, 2] <= w + 1e-3)
  assert np.all(boxes[:, 1] + boxes[:, 3] <= h + 1e-3)
  if mode != "nl":
    np.testing.assert_allclose(boxes[0], sequence.boxes[0], atol=1e-4)
  # One compiled per-frame function for the whole sequence: nothing retraces frame to frame (a
  # mode whose text length falls in a new text bucket may add one).
  assert tracker._step._cache_size() <= compiled + 1  # pylint: disable=protected-access


def test_mode_checks(tracker, sequence):
  with pytest.raises(ValueError, match="needs a sentence"):
    tracker.track(Frames(sequence), sequence.boxes[0], None, "nl_bbox")
  with pytest.raises(ValueError, match="needs an initial box"):
    tracker.track(Frames(sequence), None, "the red circle", "bbox")
  with pytest.raises(ValueError, match="mode="):
    tracker.track(Frames(sequence), sequence.boxes[0], "x", "grounding")


def test_static_baseline_repeats_the_first_box(sequence):
  boxes, _ = StaticTracker().track(Frames(sequence), sequence.boxes[0], None, "bbox")
  np.testing.assert_array_equal(boxes, np.repeat(sequence.boxes[:1], len(sequence), axis=0))


def _float64_tracker(model_overrides=None, **eval_overrides):
  """The micro model in float64, where rounding is far below any score gap of the flat score
  map of an untrained model, so that two ways of computing the same boxes agree to 1e-6. Its
  EMIM gates are open. `model_overrides`: config.model keys to set (e.g. template_cache).
  Call inside `jax.enable_x64(True)`."""
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  config.unlock()
  config.model.dtype = "float64"
  config.model.update(model_overrides or {})
  config.eval.update(eval_overrides)
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  params = jax.tree.map(lambda p: p.astype(np.float64), params)
  # The EMIM gates start at 0 (tanh(alpha) scales language into the vision tokens); opened here, so
  # that the text's way into the vision tokens counts in the boxes, as in a trained model.
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: p + 0.5 if "alpha" in jax.tree_util.keystr(path) else p, params)
  return LGTracker(model, params, config, Tokenizer(config.model.text.tokenizer,
                                                    config.model.text.max_len))


def test_text_cut_to_the_sentence_gives_the_boxes_of_the_full_text(mixed_jobs):
  """eval.text_bucket: the per-frame model sees the text up to the longest sentence in flight
  (rounded up); padding is masked everywhere, so the boxes are those of the full max_len text."""
  sentences = ["car", "the small white dog running on the grass behind a fence", None]
  jobs = [Job(j.key, j.frames, j.init_box, s) for j, s in zip(mixed_jobs, sentences)]
  with jax.enable_x64(True):
    cut, full = _float64_tracker(text_bucket=4), _float64_tracker(text_bucket=0)
    assert [cut.kept_text_tokens(n) for n in ([3], [5, 3], [12], [])] == [4, 8, 12, 4]
    assert full.kept_text_tokens([3]) == 12
    for mode in ("nl_bbox", "bbox"):
      runs = [{key: boxes for key, boxes, _ in t.track_many(jobs[:2] if mode == "nl_bbox" else jobs,
                                                              mode, batch_sequences=2)}
              for t in (cut, full)]
      for key, boxes in runs[1].items():
        np.testing.assert_allclose(runs[0][key], boxes, atol=1e-6, err_msg=f"{mode} {key}")
    # Several text lengths were used (a compilation each); the full-text tracker had one.
    assert cut._step._cache_size() > full._step._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("template_cache", [False, True])
@pytest.mark.parametrize("mode", ["nl_bbox", "bbox"])
def test_tracked_boxes_are_the_whole_models_on_the_same_crops(mixed_jobs, mode, template_cache):
  """The tracker conditions once per sequence (`LGTrack.condition`) and runs `LGTrack.localize`
  per frame, with its own crops, text cut and box mapping. Replayed frame by frame through the
  model's training entry point (`__call__`: template, search crop, full text) with the public
  crop ops (OSTrack's: `ostrack_region`, `ostrack_crop`, mapped back through `centred_region`,
  clipped by `clip_box_margin`), the boxes are the same. No Hanning window (a blend of weight 0),
  so both read the box at the score peak.
  The head hands size and offset back in float32, computed by the tracker over the chosen cell's
  receptive window ('VALID' convolutions) and by the whole model over the map, so the two differ by
  float32 rounding (1.2e-6 relative seen; each replayed frame starts from the tracker's previous
  box, so that it does not add up). A wrong conditioning or text mask moves boxes by far more.
  With `model.template_cache` the tracker keeps the template's keys and values of every block
  and runs only the search tokens per frame; `__call__` runs both under the block-structured
  attention: the same boxes (CE too: `tests/models/test_template_cache.py`)."""
  job = mixed_jobs[0]
  with jax.enable_x64(True):
    tracker = _float64_tracker({"template_cache": template_cache}, window="blend",
                               window_influence=0.0)
    tracked, _ = tracker.track(job.frames, job.init_box, job.sentence, mode)
    d = tracker.config.data
    ids, mask = tracker.tokenize([job.sentence])
    if mode == "bbox":
      mask = np.zeros_like(mask)
    first = np.asarray(job.frames[0])
    init_box = np.asarray(job.init_box, np.float64)
    region = crop.ostrack_region(init_box, d.template_factor)
    template = crop.ostrack_crop(first, region, d.template_size)[None]
    template_box = crop.box_to_crop(init_box, crop.centred_region(init_box, region[2]))[None]
    apply = jax.jit(tracker.model.apply)
    for t, frame in enumerate(job.frames[1:4], start=1):
      h, w = frame.shape[:2]
      region = crop.ostrack_region(tracked[t - 1], d.search_factor)  # from the tracker's last box
      search = crop.ostrack_crop(np.asarray(frame), region, d.search_size)[None]
      out = apply({"params": tracker.params}, template, search, template_box,
                  ids, mask, np.full((1,), Mode(mode).model_mode, np.int32))
      back = crop.centred_region(tracked[t - 1], region[2])
      box = np.asarray(box_ops.clip_box_margin(crop.box_from_crop(out["boxes"][0], back), w, h,
                                               tracker.config.eval.clip_margin))
      np.testing.assert_allclose(tracked[t], box, rtol=1e-5, err_msg=f"frame {t}")


def test_per_frame_function_reads_no_per_sequence_parameter(tracker):
  """Template, sentence and modulation are `LGTrack.condition`'s, computed once per sequence: the
  per-frame function (after dead-code elimination) reads none of their parameters, and does read
  the ViT's, the EMIMs' attentions', the decoder's and the head's."""
  args, kwargs = tracker.step_shapes(2, (100, 80), 5)
  step_fn = functools.partial(tracker._step_fn, **kwargs)  # pylint: disable=protected-access
  closed = jax.make_jaxpr(step_fn)(*args)
  _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
  paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(args)]
  assert len(paths) == len(used)
  read = [p for p, u in zip(paths, used) if u]
  per_sequence = ("text_encoder", "text_tokens_proj", "text_global_proj", "null_template",
                  "pos_embed_z", "'modulation'", "text_embed_proj")
  assert any(name in p for p in paths for name in per_sequence)
  assert not [p for p in read if any(name in p for name in per_sequence)]
  for name in ("blocks_0", "'lang_to_vision'", "pos_embed_x", "decoder", "head", "patch_embed"):
    assert any(name in p for p in read), name
  # The first EMIM's text input is the sentence's: its language-to-vision attention's keys and
  # values come with the conditioning (only the output bias is left to add); the next EMIM's
  # text has seen the frame.
  first, second = ([p for p in read if f"'emims_{i}']['lang_to_vision'" in p] for i in (0, 1))
  assert first == [
      "[0]['params']['emims_0']['lang_to_vision']['out']['bias']"], first
  assert any("['key']['kernel']" in p for p in second), second


def test_cached_template_per_frame_function_runs_only_the_search_side():
  """With `model.template_cache` the per-frame function reads nothing of the template's side: not
  the template embedding, nor the EMIMs' text refinement, nor any language-to-vision weight but
  its output bias (the text's keys and values come cached); it still reads every ViT block."""
  from tests.conftest import micro_config  # pylint: disable=import-outside-toplevel
  config = micro_config()
  config.unlock()
  config.model.template_cache = True
  model = lgtrack.build_model(config)
  params = jax.jit(model.init)(jax.random.key(0), **lgtrack.dummy_inputs(config))["params"]
  tracker = LGTracker(model, params, config, None)
  args, kwargs = tracker.step_shapes(2, (100, 80), 5)
  assert len(args[-1]["cond"]["kv"]) == config.model.depth
  step_fn = functools.partial(tracker._step_fn, **kwargs)  # pylint: disable=protected-access
  closed = jax.make_jaxpr(step_fn)(*args)
  _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
  paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(args)]
  read = [p for p, u in zip(paths, used) if u]
  template_side = ("pos_embed_z", "null_template", "vision_to_lang", "text_mlp", "norm_t",
                   "norm_v2", "text_encoder", "text_tokens_proj", "'modulation'")
  assert not [p for p in read if any(name in p for name in template_side)]
  emim_reads = [p for p in read if "'emims_" in p and "lang_to_vision" in p]
  assert emim_reads == [f"[0]['params']['emims_{i}']['lang_to_vision']['out']['bias']"
                        for i in range(len(config.model.emim.layers))], emim_reads
  for i in range(config.model.depth):
    assert any(f"'blocks_{i}']['attn']['query']" in p for p in read), i


def test_step_lowered_for_a_device_is_the_same_function(tracker):
  """lower_step(device=...) lowers the per-frame function from shapes placed on that device (the
  benchmark counts FLOPs on the host CPU where the accelerator's backend cannot): same FLOPs."""
  host = jax.devices("cpu")[0]
  on_host = tracker.lower_step(2, (100, 80), 5, device=host)
  default = tracker.lower_step(2, (100, 80), 5)
  assert on_host.cost_analysis()["flops"] == default.cost_analysis()["flops"] > 0


@pytest.mark.parametrize("mode", ["nl_bbox", "nl"])
def test_batched_tracking_equals_sequential(mixed_jobs, mode):
  """K = 3 slots over 5 sequences (refills, idle slots, two frame buckets) gives the boxes of
  tracking one sequence at a time.

  In float32 a batched matmul rounds differently from a batch-1 one (~1e-6 relative), and on an
  untrained model's flat score map that flips the argmax now and then, after which the paths
  diverge; so the comparison runs in float64, where rounding is far below any score gap.
  """
  with jax.enable_x64(True):
    tracker = _float64_tracker()
    sequential = {j.key: tracker.track(j.frames, j.init_box, j.sentence, mode)[0]
                  for j in mixed_jobs}
    batched = {key: boxes for key, boxes, _ in tracker.track_many(mixed_jobs, mode,
                                                                   batch_sequences=3)}
  assert sorted(batched) == sorted(sequential)
  for key, boxes in sequential.items():
    assert batched[key].shape == boxes.shape
    np.testing.assert_allclose(batched[key], boxes, atol=1e-6, err_msg=key)


def test_frame_sizes_in_one_bucket_share_a_compilation(tracker, tmp_path):
  """A 200x150 and a 192x144 sequence both pad to 256x256: the step function compiles once."""
  cfg_bucket = tracker.config.eval.frame_bucket
  assert cfg_bucket == 128
  compiled = tracker._step._cache_size()  # pylint: disable=protected-access
  for size, seed in (((200, 150), 5), ((192, 144), 6)):
    root = str(tmp_path / str(seed))
    synthetic.generate(root, num_train=0, num_test=1, num_frames=3, seed=seed, image_size=size)
    seq = sources.load("synthetic", root, "test")[0]
    tracker.track(Frames(seq), seq.boxes[0], seq.sentence, "bbox")
  assert tracker._step._cache_size() <= max(compiled, 1)  # pylint: disable=protected-access


def test_window_sides():
  assert [window_side(n, 128) for n in (0, 1, 128, 129, 257, 385, 513, 769, 1025, 1537)] == [
      128, 128, 128, 256, 384, 512, 768, 1024, 1536, 2048]


def test_window_crops_are_the_frames_crops():
  """eval.search_window: each slot's window holds every pixel its crop reads, so cropping the
  window (with its origin) gives the full frame's crop exactly: regions inside the frame, across
  each border, larger than the frame, and off it altogether; slots of different frame sizes."""
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 256, (720, 1280, 3), np.uint8), None,
            rng.integers(0, 256, (300, 500, 3), np.uint8)]
  regions = [(600.3, 300.7, 90.2), (-40.5, 250.2, 120.0),  # inside; across two borders
             (-500.0, -400.0, 2500.0), (1270.1, 100.0, 50.0),  # larger than the frame; an edge
             (2000.0, 900.0, 60.0)]  # off the frame
  for first, third in [(0, 1), (1, 0), (2, 1), (3, 4), (4, 2), (0, 3)]:
    regs = [np.asarray(regions[first]), None, np.asarray(regions[third])]
    windows, hw, origin = window_frames(frames, regs, 128)
    padded, hw_full = pad_frames(frames, 128)
    np.testing.assert_array_equal(hw, hw_full)
    for k in (0, 2):
      full = crop.crop_and_resize(padded[k], regs[k], 32, hw_full[k])
      cut = crop.crop_and_resize(windows[k], regs[k], 32, hw[k], origin[k])
      np.testing.assert_array_equal(np.asarray(cut), np.asarray(full), err_msg=f"{regs[k]}")
    assert np.all(windows[1] == 0) and tuple(hw[1]) == (1, 1)
  # The bounds themselves: the crop reads nothing outside them (garbage there changes nothing).
  for region in rng.uniform((-100, -100, 1), (400, 300, 300), (50, 3)):
    r0, r1, c0, c1 = crop.window_bounds(region, (300, 500))
    poisoned = np.full_like(frames[2], 255)
    poisoned[r0:r1, c0:c1] = frames[2][r0:r1, c0:c1]
    np.testing.assert_array_equal(np.asarray(crop.crop_and_resize(poisoned, region, 32)),
                                  np.asarray(crop.crop_and_resize(frames[2], region, 32)))
  # A 100 px target in a 1280x720 frame (search region 4x its side): a 512x512 window, 0.8 MB
  # against the padded frame's 3.0 MB.
  windows, _, _ = window_frames(frames[:1], [np.asarray((600.0, 300.0, 400.0))], 128)
  assert windows.shape == (1, 512, 512, 3)


def test_search_windows_give_the_boxes_of_whole_frames(tmp_path):
  """End to end, K = 2 over sequences of two frame sizes, float64: the same boxes whether the
  device gets whole frames or the search windows."""
  jobs = []
  for size, seed in (((480, 360), 7), ((320, 200), 8)):
    root = str(tmp_path / str(seed))
    synthetic.generate(root, num_train=0, num_test=2, num_frames=5, seed=seed, image_size=size)
    jobs += [Job(f"{seed}/{s.name}", [s.load_frame(i) for i in range(len(s))], s.boxes[0],
                 s.sentence)
             for s in sources.load("synthetic", root, "test")]
  with jax.enable_x64(True):
    tracker = _float64_tracker()
    runs = []
    for on in (False, True):  # the switch is read per frame: one tracker serves both
      tracker.config.eval.search_window = on
      runs.append({key: boxes for key, boxes, _ in tracker.track_many(jobs, "nl_bbox", 2)})
  assert sorted(runs[0]) == sorted(runs[1]) and len(runs[0]) == 4
  for key, boxes in runs[0].items():
    np.testing.assert_allclose(runs[1][key], boxes, rtol=0, atol=1e-9, err_msg=key)
