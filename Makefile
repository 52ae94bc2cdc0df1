# Two commands on a fresh clone: `make book` and `make test` (see README.md).
# Both are idempotent: the venv is reused while pyproject.toml is unchanged, the smoke
# data is generated once, and Jupyter Book re-executes only notebooks whose code changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dldna-installed

export DLDNA_PROFILE ?= smoke
export DLDNA_DATA_DIR ?= $(CURDIR)/data
export PYTHONHASHSEED ?= 0

.PHONY: book test install data web-assets unit gpu-check-small notebooks book-strict browser-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[all]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: install
	$(BIN)/python -m dldna.data.prepare --profile smoke

# MathJax and mermaid from npm into book/_static/vendor (once), so the site renders offline.
web-assets: install
	$(BIN)/python scripts/fetch_web_assets.py

book: data web-assets
	$(BIN)/jupyter-book build . --keep-going

unit: install
	$(BIN)/python -m pytest tests

notebooks: data
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=300 --durations=0 notebooks/en

book-strict: data web-assets
	$(BIN)/jupyter-book build . -W -n --keep-going

# Headless Chromium (Debian package `chromium`) opens the built pages; installed here
# when missing and running as root.
browser-check: book-strict
	@test -x /usr/bin/chromium || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(BIN)/python scripts/browser_check.py _build/html

# The GPU check's small CPU run: the same script that measures throughput on a GPU.
gpu-check-small: install
	bash scripts/gpu_check.sh --cpu-small

test: unit gpu-check-small notebooks book-strict browser-check

clean:
	rm -rf _build
