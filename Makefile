# The course's commands. The two you need: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
PORT   ?= 8888
TORCH  ?=
# JupyterLab refuses to start as root unless told; containers often run as root
ROOTFLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: FORCE help install lab test lint unit nbval browser execute student bench corpus clean \
	web-assets slides site

help:
	@echo "make lab      start JupyterLab on the lessons (creates .venv on first use)"
	@echo "make test     lint, unit tests, every notebook under strict nbval, browser tests"
	@echo "make execute  re-run every notebook in place in a fresh kernel (authors)"
	@echo "make student  student copies with nbgrader (solutions become stubs) in student/; docs/grading.md"
	@echo "make bench    run the benchmarks, print the table, write docs/benchmarks.md"
	@echo "make corpus   freeze the lessons' prose into assets/corpus.txt (lesson 12's text; authors)"
	@echo "make slides   reveal.js slides of every lesson in build/slides/ (offline; open index.html)"
	@echo "make site     a static HTML site of the executed lessons in build/site/ (offline; open index.html)"
	@echo "make clean    remove caches, test artifacts and student copies"

# JupyterLab's settings for this environment: no news pop-up, no update checks (the course is offline).
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

# PyTorch first: the CPU build unless there is an NVIDIA GPU (TORCH=cpu / TORCH=cuda override;
# see tools/install_torch.py), then the course, which finds torch already there.
$(STAMP): pyproject.toml tools/install_torch.py tools/jupyterlab-overrides.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	TORCH="$(TORCH)" $(BIN)/python tools/install_torch.py
	$(BIN)/python -m pip install -q -e ".[test]"
	@mkdir -p $(dir $(LAB_OVERRIDES)) && cp tools/jupyterlab-overrides.json $(LAB_OVERRIDES)
	@$(BIN)/python -c "import torch; print('PyTorch', torch.__version__, 'in $(VENV):', '$$(du -sh $(VENV) | cut -f1)')"
	@touch $(STAMP)

# `make lab TORCH=cpu` (or cuda) on an existing .venv: run the install again to switch the build
ifneq ($(strip $(TORCH)),)
$(STAMP): FORCE
endif
FORCE:

install: $(STAMP)

# reveal.js and MathJax for the slides and the site (tools/publish.py), from the npm registry, at the
# versions of tools/web/package-lock.json; again only when the lock file changes
WEB_STAMP := tools/web/node_modules/.installed-stamp
$(WEB_STAMP): tools/web/package.json tools/web/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm (Debian: apt-get install npm)"; exit 1; }
	cd tools/web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

web-assets: $(WEB_STAMP)

slides: $(STAMP) $(WEB_STAMP)
	rm -rf build/slides
	$(BIN)/python tools/publish.py slides build/slides

site: $(STAMP) $(WEB_STAMP)
	rm -rf build/site
	$(BIN)/python tools/publish.py site build/site

lab: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) $(ROOTFLAG) 00_welcome.ipynb

lint: $(STAMP)
	$(BIN)/ruff check course_lib tests benchmarks tools notebooks
	$(BIN)/ruff format --check course_lib tests benchmarks tools

unit: $(STAMP)
	$(BIN)/python -m pytest -q -rs -m "not browser" tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(NBVAL) notebooks

browser: $(STAMP) $(WEB_STAMP)
	$(BIN)/python -m pytest -q -rs -m browser tests

test: lint unit nbval browser

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 notebooks/*.ipynb

student: $(STAMP)
	$(BIN)/python -m course_lib.student notebooks student

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# after a re-freeze, re-execute lesson 12 (its outputs depend on the text)
corpus: $(STAMP)
	$(BIN)/python -m course_lib.corpus freeze

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts student build *.egg-info tools/web/node_modules
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
