# Quick start: `make demo` (set-up if needed, then train + test the demo detector)
#              `make test` (set-up if needed, then the test suite)
PYTHON := .venv/bin/python
DEMO_CONFIG := configs/detector/demo_clip_tiny.yaml
DATA_ROOT := datasets

.PHONY: setup demo demo-data test

setup:
	@./install.sh

demo-data: setup
	$(PYTHON) -m preprocessing.demo.generate --root $(DATA_ROOT) --seed 0

demo: demo-data
	$(PYTHON) training/train.py --detector_path $(DEMO_CONFIG)

test: setup
	$(PYTHON) -m pytest -q --durations=15
