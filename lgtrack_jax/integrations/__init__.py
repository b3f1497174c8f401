"""Adapters of the per-frame tracker (`lgtrack_jax.load_tracker`) to benchmark toolkits.

  got10k.py  a `got10k.trackers.Tracker` for the GOT-10k toolkit (`got10k==0.1.3`): its
             `Experiment*` classes run and score it.
  vot.py     a TraX server for the VOT toolkit: `python -m lgtrack_jax.integrations.vot ...`
             (needs `vot-trax`; docs/integrations_vot.md has the `trackers.ini` entry).

Each imports its toolkit itself, so `import lgtrack_jax` never needs one.
"""
