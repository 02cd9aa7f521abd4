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

# Long fuzz campaigns (tests/test_fuzz_*.py, seeded at random): over text logs, exports and
# archives (FUZZ_FACTOR times the suite's examples each), and over damaged EVTX files. A failing
# input is kept under tests/files/crashes/<kind>/, where `make test` replays it from then on.
.PHONY: fuzz fuzz-text fuzz-evtx
FUZZ_FACTOR ?= 200
fuzz: fuzz-text fuzz-evtx

fuzz-text: $(BIN)/authtriage
	HYPOTHESIS_PROFILE=fuzz FUZZ_FACTOR=$(FUZZ_FACTOR) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_fuzz_text.py tests/test_fuzz_formats.py tests/test_fuzz_archives.py

fuzz-evtx: $(BIN)/authtriage
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz_evtx.py

clean:
	rm -rf $(VENV) build dist *.egg-info report.html
