import os

import numpy as np

from lgtrack_jax.evaluation import compare, metrics, results


def _run_dir(tmp_path, name, tracker, mode, noise, rng):
  gt = np.tile([[20.0, 20.0, 30.0, 30.0]], (50, 1))
  pred = gt + rng.normal(0, noise, gt.shape)
  s = metrics.summarize([metrics.sequence_curves(pred, gt, np.zeros(50, bool))])
  d = tmp_path / name
  os.makedirs(d)
  results.write_json_atomic(str(d / "metrics.json"), {**s, "tracker": tracker, "mode": mode})
  return str(d)


def test_table_ordered_by_auc_and_joint_plots(tmp_path):
  rng = np.random.default_rng(0)
  dirs = [_run_dir(tmp_path, "a", "lgtrack", "nl", 8.0, rng),
          _run_dir(tmp_path, "b", "static", "bbox", 30.0, rng),
          _run_dir(tmp_path, "c", "lgtrack", "nl_bbox", 1.0, rng)]
  runs = compare.load(dirs)
  assert set(runs) == {"lgtrack", "static", "lgtrack nl_bbox"}
  lines = compare.table(runs).splitlines()
  assert [l.split()[0] for l in lines[1:]] == ["lgtrack", "lgtrack", "static"]
  assert "nl_bbox" in lines[1]
  from lgtrack_jax.evaluation import plots  # pylint: disable=import-outside-toplevel
  paths = plots.plot_curves(str(tmp_path / "joint"), runs, "test")
  assert all(os.path.getsize(p) > 0 for p in paths)
