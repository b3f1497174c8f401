"""The code's layout rules (docs/design.md section 14), read from the source with `ast`.

Imports run one way: entry points (train.py, eval.py, track.py, `__main__` modules), then
training / tracking / evaluation, then models, losses, weights, then ops and input sources.
Every import counts, including those inside functions (lazy imports are still dependencies).
"""

import ast
import collections
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("train", "eval", "track")


def _modules():
  """{dotted module name: path} of the library and the input pipeline."""
  out = {}
  for root in ("lgtrack_jax", "input_pipeline"):
    for path in sorted((REPO / root).rglob("*.py")):
      parts = list(path.relative_to(REPO).with_suffix("").parts)
      if parts[-1] == "__init__":
        parts = parts[:-1]
      out[".".join(parts)] = path
  return out


MODULES = _modules()


def _imports(path: pathlib.Path) -> set[str]:
  """Every absolute module name `path` imports (`from a.b import c` gives a.b and a.b.c)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  return names


def _is_main(path: pathlib.Path) -> bool:
  return 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


def _offenders(package: str, forbidden: tuple[str, ...], entry_points_too: bool = True
               ) -> list[str]:
  bad = []
  for name, path in MODULES.items():
    if not entry_points_too and _is_main(path):
      continue
    if name == package or name.startswith(package + "."):
      for imported in sorted(_imports(path)):
        if any(imported == f or imported.startswith(f + ".") for f in forbidden):
          bad.append(f"{name} imports {imported}")
  return bad


LIBRARY_ABOVE_MODELS = ("lgtrack_jax.training", "lgtrack_jax.tracking", "lgtrack_jax.evaluation",
                        "lgtrack_jax.integrations", "lgtrack_jax.weights")


@pytest.mark.parametrize("package, forbidden", [
    # ops at the bottom: nothing of the library above them.
    ("lgtrack_jax.ops", LIBRARY_ABOVE_MODELS + ("lgtrack_jax.models", "lgtrack_jax.losses",
                                                "input_pipeline")),
    ("lgtrack_jax.models", LIBRARY_ABOVE_MODELS + ("lgtrack_jax.losses", "input_pipeline")),
    ("lgtrack_jax.losses", LIBRARY_ABOVE_MODELS),
    ("lgtrack_jax.weights", ("lgtrack_jax.training", "lgtrack_jax.tracking",
                             "lgtrack_jax.evaluation", "lgtrack_jax.integrations", "configs")),
    # Evaluating and tracking never need the training code.
    ("lgtrack_jax.tracking", ("lgtrack_jax.training", "lgtrack_jax.evaluation",
                              "lgtrack_jax.integrations")),
    ("lgtrack_jax.evaluation", ("lgtrack_jax.training", "lgtrack_jax.integrations")),
    ("lgtrack_jax.training", ("lgtrack_jax.tracking", "lgtrack_jax.evaluation",
                              "lgtrack_jax.integrations")),
    ("input_pipeline", ("lgtrack_jax.training", "lgtrack_jax.tracking", "lgtrack_jax.evaluation",
                        "lgtrack_jax.integrations")),
])
def test_imports_run_one_way(package, forbidden):
  assert not _offenders(package, forbidden)


@pytest.mark.parametrize("package", ["lgtrack_jax", "input_pipeline"])
def test_the_library_imports_no_entry_point_and_no_config_file(package):
  # `python -m` modules may read a default config (input_pipeline.inspect); weights.convert may
  # not (the weights rule above): a conversion names the config it fits.
  assert not _offenders(package, ENTRY_POINTS, entry_points_too=True)
  assert not _offenders(package, ("configs",), entry_points_too=False)


def _defines_flags_on_import(path: pathlib.Path) -> bool:
  """Whether importing `path` defines absl flags: a `DEFINE_*` call at module level (outside
  functions and the `if __name__ == "__main__":` block)."""
  for node in ast.parse(path.read_text(encoding="utf-8")).body:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
      continue
    if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
      continue
    for call in ast.walk(node):
      if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
          and call.func.attr.startswith("DEFINE")):
        return True
  return False


def test_command_line_flags_are_defined_only_in_entry_points():
  defining = []
  for name, path in MODULES.items():
    text = path.read_text(encoding="utf-8")
    if ("flags.DEFINE_" in text or "config_flags.DEFINE_" in text) and not _is_main(path):
      defining.append(name)
  assert not defining, f"flags defined outside entry points: {defining}"
  # Library modules that also run as programs define their flags only when run: two of them in
  # one process (a test session) would otherwise both claim --config.
  on_import = [name for name, path in MODULES.items() if _defines_flags_on_import(path)]
  assert not on_import, f"modules defining flags when imported: {on_import}"


def test_the_rules_see_lazy_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  from lgtrack_jax.training import checkpoint\n", encoding="utf-8")
  assert "lgtrack_jax.training.checkpoint" in _imports(path)


def _code_lines(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line number, stripped text) of the statements of `path`: blank lines, comments, imports
  and docstrings (string-literal statements) left out."""
  text = path.read_text(encoding="utf-8")
  prose = set()
  for node in ast.walk(ast.parse(text)):
    if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)):
      prose.update(range(node.lineno, node.end_lineno + 1))
  return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)
          if line.strip() and not line.strip().startswith(("#", "import ", "from "))
          and i not in prose]


def _repeated_blocks(paths, size: int = 6) -> list[list[tuple[str, int]]]:
  """Places (file, first line) sharing a run of `size` statement lines, whatever the indentation."""
  places = collections.defaultdict(list)
  for path in paths:
    lines = _code_lines(path)
    for k in range(len(lines) - size + 1):
      places[tuple(text for _, text in lines[k:k + size])].append((path.name, lines[k][0]))
  return [where for where in places.values() if len(where) > 1]


def test_no_block_of_six_lines_is_written_twice_in_the_library():
  """One form per computation (docs/design.md section 14): the same six statement lines in two
  places of `lgtrack_jax/` are one function waiting to be written. (`duplicates` also finds
  blocks alike in shape only; those left in place say why in a comment.)"""
  assert not _repeated_blocks(sorted((REPO / "lgtrack_jax").rglob("*.py")))


def test_the_repeat_rule_sees_a_repeat(tmp_path):
  block = "a = f(x)\nb = g(a)\nc = a + b\nd = h(c)\ne = d * 2\nreturn e\n"
  (tmp_path / "one.py").write_text("def f1(x):\n  " + block.replace("\n", "\n  "))
  (tmp_path / "two.py").write_text("class C:\n  def f2(self, x):\n    \"\"\"Doc.\"\"\"\n    "
                                   + block.replace("\n", "\n    "))
  assert _repeated_blocks(sorted(tmp_path.glob("*.py"))) == [[("one.py", 2), ("two.py", 4)]]
