"""What the command-line programs share: a user error is one line on stderr, never a traceback.

Each program (train.py, eval.py, track.py, `python -m lgtrack_jax.integrations.vot`) defines its
own flags and passes `flags_parser(...)` to `app.run`; what it catches as user errors goes to
`fail`.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, NoReturn

from absl import flags


def one_line(error: BaseException | str) -> str:
  """The message on one line (its lines joined by '; '): logs and scripts read stderr by line."""
  return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


def fail(prog: str, error: BaseException | str, status: int = 2) -> NoReturn:
  """Prints `<prog>: error: <message on one line>` to stderr and exits with `status`."""
  message = one_line(error) or (type(error).__name__ if isinstance(error, BaseException) else "")
  print(f"{prog}: error: {message}", file=sys.stderr)
  sys.exit(status)


def flags_parser(prog: str, config_flag: Any = None, required: tuple[str, ...] = (),
                 status: int = 2, after: Callable[[], None] | None = None
                 ) -> Callable[[list[str]], list[str]]:
  """An `app.run(flags_parser=...)` that reports bad flags in one line (`fail`).

  Args:
    prog: the program's name in messages.
    config_flag: the holder of the config-file flag, if any: its file is loaded here
      (config_flags defers a load error to first use), so a missing file, a syntax error or an
      override naming no field is one line too.
    required: flag names that must be given.
    status: exit status of a bad command line.
    after: run once the flags parsed (e.g. to adjust logging).
  """
  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
      for name in required:
        if flags.FLAGS[name].value is None:
          raise flags.Error(f"--{name} is required")
      if config_flag is not None and config_flag.value is not None:
        config_flag.value.get("model")  # any read loads the file
      if after is not None:
        after()
    except OSError as e:  # its last line says why: no such file, a syntax error, ...
      fail(prog, f"--config: {str(e.__cause__ or e).strip().splitlines()[-1].strip()}", status)
    except flags.Error as e:
      fail(prog, e, status)
    except (AttributeError, KeyError) as e:
      # ml_collections raises AttributeError(KeyError(message)); a KeyError's str() is a repr.
      while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
      fail(prog, "a --config.* override names no field of the config: "
           f"{e.args[0] if isinstance(e, KeyError) and e.args else e}", status)
    return rest

  return parse
