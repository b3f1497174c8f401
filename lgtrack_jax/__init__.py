"""LGTrack in JAX/Flax: language-guided single-object visual tracking.

`lgtrack_jax.load_tracker(config, checkpoint=... | weights=...)` gives the per-frame tracker
(`tracking/online.py`); it is imported on first use, so `import lgtrack_jax` stays cheap.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
  if name in ("load_tracker", "Tracker"):
    from lgtrack_jax.tracking import online  # pylint: disable=import-outside-toplevel
    return getattr(online, name)
  raise AttributeError(f"module 'lgtrack_jax' has no attribute {name!r}")
