# Two commands for a fresh machine (python3 >= 3.11 and make):
#   make demo   set up .venv, analyze the sample support-ticket bundle, write report.html
#   make test   set up .venv with the test extras, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/authtriage: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/authtriage
	$(BIN)/authtriage analyze samples/ticket-bundle/ticket.zip -o report.html
	@echo "wrote report.html (open it in a browser); other formats: --format md|text|json"

test: $(BIN)/authtriage
	$(BIN)/ruff check analyzer tests bench docs
	$(BIN)/python -m pytest

bench: $(BIN)/authtriage
	$(BIN)/python bench/run.py
	$(BIN)/python bench/evtx.py
	$(BIN)/python bench/serve.py

# a long random campaign on damaged EVTX files; failing inputs are kept in tests/files/crashes/evtx/
.PHONY: fuzz fuzz-evtx
fuzz: fuzz-evtx
fuzz-evtx: $(BIN)/authtriage
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_fuzz_evtx.py -p no:cacheprovider

clean:
	rm -rf $(VENV) build dist *.egg-info report.html
