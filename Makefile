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

# The run directory is fixed up front so the ROC plot and the HTML report can find it;
# the last line printed stays the run's metrics.json path.
demo: DEMO_RUN := runs/$(shell date +%Y%m%d-%H%M%S)_demo_clip_tiny
demo: demo-data
	$(PYTHON) training/train.py --detector_path $(DEMO_CONFIG) --run_dir $(DEMO_RUN)
	$(PYTHON) -m analysis.roc --run $(DEMO_RUN)
	$(PYTHON) -m analysis.report --run $(DEMO_RUN)
	@echo $(DEMO_RUN)/metrics.json

test: setup
	$(PYTHON) -m pytest -q --durations=15
