# Two commands on a fresh clone: `make book` and `make test` (see README.md).
# Both are idempotent: the venv is reused while pyproject.toml is unchanged, the smoke
# data is generated once, and Jupyter Book re-executes only notebooks whose code changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dldna-installed

export DLDNA_PROFILE ?= smoke
export DLDNA_DATA_DIR ?= $(CURDIR)/data
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0

.PHONY: book test install data unit notebooks book-strict browser-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[all]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

data: install
	$(BIN)/python -m dldna.data.prepare --profile smoke

book: data
	$(BIN)/jupyter-book build . --keep-going

unit: install
	$(BIN)/python -m pytest tests

notebooks: data
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=300 notebooks/en

book-strict: data
	$(BIN)/jupyter-book build . -W -n --keep-going

test: unit notebooks book-strict

clean:
	rm -rf _build
