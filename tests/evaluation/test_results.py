"""Result files: atomic writes, tolerant reads, resumability."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lgtrack_jax.evaluation import results

BOXES = np.array([[1.0, 2.0, 30.0, 40.0], [1.5, 2.25, 30.125, 39.0], [-3.0, 0.0, 12.0, 7.5]])


def test_write_then_read_round_trip(tmp_path):
  times = np.array([0.5, 0.01, 0.012345])
  path = results.write_result(tmp_path, "seq-1", BOXES, times)
  assert path == str(tmp_path / "seq-1.txt")
  np.testing.assert_array_equal(results.read_result(path), BOXES)  # floats, not truncated
  np.testing.assert_allclose(results.read_times(tmp_path / "seq-1_time.txt"), times, atol=1e-6)
  first = (tmp_path / "seq-1.txt").read_text().splitlines()[0]
  assert first == "1.0000,2.0000,30.0000,40.0000"
  # Nothing but the two results: no temporary file left behind.
  assert sorted(os.listdir(tmp_path)) == ["seq-1.txt", "seq-1_time.txt"]


def test_write_without_times_and_nan(tmp_path):
  boxes = BOXES.copy()
  boxes[1] = np.nan
  results.write_result(tmp_path / "new" / "dir", "s", boxes)
  assert os.listdir(tmp_path / "new" / "dir") == ["s.txt"]
  read = results.read_result(tmp_path / "new" / "dir" / "s.txt")
  assert np.isnan(read[1]).all()
  np.testing.assert_array_equal(read[[0, 2]], BOXES[[0, 2]])


def test_write_rejects_bad_shapes(tmp_path):
  with pytest.raises(ValueError, match="seq"):
    results.write_result(tmp_path, "seq", BOXES[:, :3])
  with pytest.raises(ValueError, match="2 times for 3 boxes"):
    results.write_result(tmp_path, "seq", BOXES, np.zeros(2))
  assert os.listdir(tmp_path) == []


def test_is_done(tmp_path):
  assert not results.is_done(tmp_path, "a")
  assert not results.is_done(tmp_path / "missing", "a")
  # A time file alone (a run killed between the two writes) is not done.
  (tmp_path / "a_time.txt").write_text("0.1\n")
  assert not results.is_done(tmp_path, "a")
  results.write_result(tmp_path, "a", BOXES, np.ones(3))
  assert results.is_done(tmp_path, "a")
  assert not results.is_done(tmp_path, "b")


def test_overwrite_is_atomic_replacement(tmp_path):
  results.write_result(tmp_path, "a", BOXES)
  results.write_result(tmp_path, "a", BOXES[:1])
  assert results.read_result(tmp_path / "a.txt").shape == (1, 4)
  assert os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize(
    "text",
    [
        "1,2,30,40\n1.5,2.25,30.125,39\n-3,0,12,7.5\n",  # comma, mixed int/float
        "1\t2\t30\t40\n1.5\t2.25\t30.125\t39\n-3\t0\t12\t7.5",  # tab, no trailing newline
        "1 2 30 40\n  1.5   2.25 30.125 39\n-3 0 12 7.5\n\n",  # spaces, blank lines at the end
        # mixed delimiters, CRLF, exponents
        "1, 2, 30, 40\r\n1.5,\t2.25,30.125,39\r\n-3.0e0,0.0,1.2e1,7.5\r\n",
    ],
)
def test_read_delimiters(tmp_path, text):
  path = tmp_path / "r.txt"
  path.write_text(text)
  out = results.read_result(path)
  assert out.dtype == np.float64
  np.testing.assert_array_equal(out, BOXES)


def test_read_integer_file(tmp_path):
  path = tmp_path / "int.txt"
  path.write_text("10,20,30,40\n11,21,31,41\n")
  np.testing.assert_array_equal(results.read_result(path), [[10, 20, 30, 40], [11, 21, 31, 41]])


def test_read_empty_file(tmp_path):
  path = tmp_path / "empty.txt"
  path.write_text("")
  assert results.read_result(path).shape == (0, 4)


@pytest.mark.parametrize(
    "text, line",
    [
        ("1,2,3,4\n1,2,3\n", 2),
        ("1,2,3,4\n1,2,3,4,5\n", 2),
        ("1,2,abc,4\n", 1),
        ("1,2,3,4\n\n1,2,3,4\n", 2),  # a blank line inside would shift every later frame
    ],
)
def test_read_malformed_names_file_and_line(tmp_path, text, line):
  path = tmp_path / "bad.txt"
  path.write_text(text)
  with pytest.raises(ValueError, match=rf"bad\.txt:{line}:"):
    results.read_result(path)


def test_write_json_atomic(tmp_path):
  obj = {"auc": np.float64(65.5), "curve": np.arange(3) / 2, "n": np.int64(3), "name": "x"}
  path = tmp_path / "out" / "metrics.json"
  results.write_json_atomic(path, obj)
  expected = {"auc": 65.5, "curve": [0.0, 0.5, 1.0], "n": 3, "name": "x"}
  assert json.loads(path.read_text()) == expected
  assert os.listdir(path.parent) == ["metrics.json"]
  with pytest.raises(TypeError):
    results.write_json_atomic(path, {"bad": object()})
  # The failed write left the old file intact and no temporary file.
  assert json.loads(path.read_text())["n"] == 3
  assert os.listdir(path.parent) == ["metrics.json"]
