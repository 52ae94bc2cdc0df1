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

.PHONY: book test install data web-assets unit gpu-check-small notebooks book-strict browser-check chromium jupyterlab-check clean \
	notebooks-full book-full book-full-mirror test-transformers4 standalone-check

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

# Headless Chromium (Debian package `chromium`) opens the built pages, with fonts for the
# Korean and Chinese editions (`fonts-noto-cjk`); installed here when missing and running
# as root.
chromium:
	@{ test -x /usr/bin/chromium && fc-list :lang=ko | grep -q . && fc-list :lang=zh-cn | grep -q .; } || \
		[ "$$(id -u)" != 0 ] || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk)

browser-check: book-strict chromium
	$(BIN)/python scripts/browser_check.py _build/html

# The notebooks opened in JupyterLab (with jupyterlab-myst, from the book extra) in headless
# Chromium: each markdown cell rendered, no raw MyST role or directive. Every English
# notebook and one page per translation (the language check holds each translated cell to
# the English cell's roles, directives and fences); JUPYTERLAB_NOTEBOOKS="notebooks/*/*.ipynb"
# opens all 30 (about 4 minutes).
JUPYTERLAB_NOTEBOOKS ?= $(wildcard notebooks/en/*.ipynb) notebooks/ko/10_08_clip.ipynb \
	notebooks/zh/10_08_clip.ipynb
jupyterlab-check: install chromium
	$(BIN)/python scripts/jupyterlab_check.py $(JUPYTERLAB_NOTEBOOKS)

# The GPU check's small CPU run: the same script that measures throughput on a GPU.
gpu-check-small: install
	bash scripts/gpu_check.sh --cpu-small

# The full profile without network: small models of the real classes in a Hugging Face
# cache under the real ids, dataset mirrors in the original layouts, every notebook via
# papermill with profile="full" and HF_HUB_OFFLINE=1 (scripts/full_mirror.py).
FULL_MIRROR ?= _build/full-mirror
notebooks-full: install
	$(BIN)/python scripts/full_mirror.py all $(FULL_MIRROR)

# The site from full-profile executions (needs a GPU and internet): notebooks executed in
# the full profile, stored with their provenance in $(FULL_STORE), pages whose code has
# changed since executed in smoke instead; the site goes to _build/html-full.
FULL_STORE ?= book/executed
book-full: data web-assets
	$(BIN)/python scripts/book_full.py execute --store $(FULL_STORE)
	$(BIN)/python scripts/book_full.py build --store $(FULL_STORE)

# The same build from the mirror run's executions (what CI can check without network).
book-full-mirror: notebooks-full web-assets
	$(BIN)/python scripts/book_full.py store --mirror --executed $(FULL_MIRROR)/executed --store _build/full-store
	$(BIN)/python scripts/book_full.py build --strict --store _build/full-store

# The other library major: the latest transformers 4.x (with the tokenizers and
# huggingface_hub it needs) in a second venv layered over $(VENV), which supplies
# everything else (torch is not installed twice). Unit tests and a subset of the smoke
# notebooks run in it.
TF4_VENV ?= .venv-tf4
TF4_STAMP := $(TF4_VENV)/.dldna-installed
TF4_NOTEBOOKS ?= notebooks/en/10_02_captioning_and_vqa.ipynb notebooks/en/10_03_fusion.ipynb \
	notebooks/en/10_04_multimodal_embedding.ipynb notebooks/en/10_08_clip.ipynb \
	notebooks/en/10_10_exercises.ipynb
# The unit tests that touch transformers (make test-transformers4 TF4_TESTS=tests: all).
TF4_TESTS ?= tests/test_loaders.py tests/test_full_profile.py tests/test_encoders.py \
	tests/test_flickr8k.py tests/test_cache.py tests/test_train_multimodal.py tests/test_evaluate_models.py
$(TF4_STAMP): $(STAMP)
	test -x $(TF4_VENV)/bin/python || $(PYTHON) -m venv $(TF4_VENV)
	echo "import site; site.addsitedir('$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")')" \
		> "$$($(TF4_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz-dldna-base.pth"
	$(TF4_VENV)/bin/python -m pip install -q --disable-pip-version-check "transformers>=4.57,<5"
	$(TF4_VENV)/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

test-transformers4: $(TF4_STAMP) data
	$(TF4_VENV)/bin/python -c "import transformers; assert transformers.__version__ < '5', transformers.__version__"
	$(TF4_VENV)/bin/python -m pytest -p no:cacheprovider $(TF4_TESTS)
	$(TF4_VENV)/bin/python -m pytest -p no:cacheprovider --nbmake --nbmake-timeout=300 $(TF4_NOTEBOOKS)

# A notebook as a Colab reader runs it: copied alone into an empty folder, in a fresh venv
# (layered over $(VENV) for torch and the rest) that installs dldna[colab] from a git URL
# of the committed HEAD; papermill -p profile smoke; no "skipped" or "not found" output.
STANDALONE_NOTEBOOKS ?= notebooks/en/10_06_cross_attention_ablation.ipynb
standalone-check: install
	$(BIN)/python scripts/standalone_check.py $(STANDALONE_NOTEBOOKS)

test: unit gpu-check-small notebooks book-strict browser-check \
	jupyterlab-check standalone-check book-full-mirror test-transformers4

clean:
	rm -rf _build
