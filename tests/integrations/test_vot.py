"""The TraX server (`python -m lgtrack_jax.integrations.vot`) driven as the VOT toolkit drives it.

The server runs as a real subprocess, started the way vot-toolkit's `TrackerProcess` starts a
`protocol = trax` tracker (a temporary working directory, stdin/stdout as the TraX channel,
stderr merged into stdout), and is driven by vot-trax's own client (`trax.client.Client`): its
rectangles and confidences must be the per-frame API's on the same frames.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lgtrack_jax
from input_pipeline import sources, synthetic
from lgtrack_jax.integrations import vot
from tests.conftest import micro_config, write_micro_config_file

trax = pytest.importorskip("trax", reason="needs vot-trax")
from trax.client import Client  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
  """An 8-frame synthetic sequence (192x144 jpg frames, a moving shape)."""
  root = str(tmp_path_factory.mktemp("synthetic"))
  synthetic.generate(root, num_train=0, num_test=1, num_frames=8, seed=7)
  (seq,) = sources.load("synthetic", root, "test")
  return seq


def _server_env() -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))  # env_PYTHONPATH
  env["TRAX"] = "1"  # as vot-toolkit sets it
  return env


def _start_server(args: list[str], cwd: str, stderr=subprocess.STDOUT) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", "lgtrack_jax.integrations.vot", *args], cwd=cwd,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                          env=_server_env())


@pytest.mark.timeout(300)
def test_trax_session_gives_the_api_boxes(workdir, sequence, tmp_path):
  config_file = write_micro_config_file(tmp_path)
  cwd = tmp_path / "cwd"  # vot-toolkit runs each tracker in a fresh temporary directory
  cwd.mkdir()
  log = []
  proc = _start_server([f"--config={config_file}", f"--checkpoint={workdir}", "--mode=bbox"],
                       str(cwd))
  try:
    # vot-toolkit's stdio setup: (the server's stdin, the server's stdout); other output is log.
    client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), log=log.append)
    assert client.tracker_name == "LGTrack"
    assert client.region_formats == [trax.Region.RECTANGLE]
    assert client.channels == [trax.ImageChannel.COLOR]
    init = sequence.boxes[0]  # 0-based x, y, w, h
    images = [{trax.ImageChannel.COLOR: trax.FileImage.create(f)} for f in sequence.frames]
    objects, _ = client.initialize(images[0], [(trax.Rectangle.create(*init), {})], {})
    served = [objects[0][0].bounds()]
    confidences = [None]
    for image in images[1:]:
      objects, _ = client.frame(image, {}, [])  # no new objects, as vot-toolkit sends
      (region, properties), = objects
      assert region.type == trax.Region.RECTANGLE
      served.append(region.bounds())
      confidences.append(float(properties["confidence"]))
    client.quit()
    assert proc.wait(timeout=60) == 0, "".join(log)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()

  tracker = lgtrack_jax.load_tracker(micro_config(), checkpoint=workdir, mode="bbox")
  frames = [np.asarray(Image.open(f).convert("RGB")) for f in sequence.frames]
  expected = [tracker.initialize(frames[0], box=init)]
  expected_conf = [None]
  for frame in frames[1:]:
    expected.append(tracker.track(frame))
    expected_conf.append(tracker.confidence)
  # TraX prints rectangles with 4 decimals (libtrax's "%.4f"), the confidence with 6.
  np.testing.assert_allclose(np.asarray(served), np.asarray(expected), atol=1e-3, rtol=0)
  np.testing.assert_allclose(confidences[1:], expected_conf[1:], atol=1e-5, rtol=0)
  assert not np.allclose(served[-1], served[0])  # the box moved: frames were tracked


@pytest.mark.parametrize("args, message", [
    (["--checkpoint={missing}"], "checkpoint directory {missing} does not exist"),
    (["--checkpoint={workdir}", "--config=nothere.py"], "config file nothere.py does not exist"),
    (["--checkpoint={workdir}", "--mode=nl_bbox"],
     "--mode nl_bbox needs --sentence or --sentence_file"),
])
def test_user_errors_are_one_line(workdir, tmp_path, args, message):
  missing = str(tmp_path / "no_such_run")
  args = [a.format(missing=missing, workdir=workdir) for a in args]
  proc = subprocess.run(
      [sys.executable, "-m", "lgtrack_jax.integrations.vot",
       f"--config={write_micro_config_file(tmp_path)}", *args],
      cwd=str(tmp_path), capture_output=True, text=True, env=_server_env(), timeout=120)
  assert proc.returncode == 1
  assert proc.stdout == ""  # nothing on the TraX channel
  lines = proc.stderr.strip().splitlines()
  assert lines == [f"lgtrack_jax.integrations.vot: error: {message.format(missing=missing)}"]


@pytest.mark.slow  # ~5 s: another server process
@pytest.mark.timeout(300)
def test_unreadable_frame_ends_the_session_with_its_reason(workdir, tmp_path):
  # stderr apart here: what the server writes after ending the session, the client never reads.
  proc = _start_server([f"--config={write_micro_config_file(tmp_path)}",
                        f"--checkpoint={workdir}"], str(tmp_path), stderr=subprocess.PIPE)
  try:
    # vot-trax 4.0.2's Client needs a logger (log=False fails in ctypes); vot-toolkit gives one.
    client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), log=lambda _: None)
    missing = str(tmp_path / "00000001.jpg")
    image = {trax.ImageChannel.COLOR: trax.FileImage.create(missing)}
    with pytest.raises(trax.TraxException, match=f"frame {missing} cannot be read"):
      client.initialize(image, [(trax.Rectangle.create(4, 4, 20, 20), {})], {})
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1] == (
      f"lgtrack_jax.integrations.vot: error: frame {missing} cannot be read (FileNotFoundError)")


def test_sentence_file_names_the_sequence_folder(tmp_path):
  seq = tmp_path / "sequences" / "bag"
  (seq / "color").mkdir(parents=True)
  (seq / "language.txt").write_text("the  black bag\n on the floor\n")
  frame = str(seq / "color" / "00000001.jpg")
  assert vot.sequence_dir(frame) == str(seq)
  assert vot.read_sentence("{sequence_dir}/language.txt", frame) == "the black bag on the floor"
  with pytest.raises(ValueError, match="does not exist"):
    vot.read_sentence("{sequence_dir}/nlp.txt", frame)
  assert vot.resolve_mode(None, None, None) == "bbox"
  assert vot.resolve_mode(None, "the bag", None) == "nl_bbox"
  assert vot.resolve_mode(None, None, "{sequence_dir}/language.txt") == "nl_bbox"
  with pytest.raises(ValueError, match="takes no sentence"):
    vot.resolve_mode("bbox", "the bag", None)
