"""LGTrack in JAX/Flax: language-guided single-object visual tracking."""

__version__ = "0.1.0"
