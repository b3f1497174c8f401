"""Evaluation of tracking results: OPE metrics, result files, plots (docs/design.md sections 7, 9).

Pure numpy and matplotlib: an evaluation job needs neither JAX nor TensorFlow. Import the modules
directly (`from lgtrack_jax.evaluation import metrics, results, plots`); nothing is imported here so
that reading results does not pull in matplotlib.
"""
