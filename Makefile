# The course's commands. The two you need: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
PORT   ?= 8888
# JupyterLab refuses to start as root unless told; containers often run as root
ROOTFLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help install lab test lint unit nbval browser execute student bench clean

help:
	@echo "make lab      start JupyterLab on the lessons (creates .venv on first use)"
	@echo "make test     lint, unit tests, every notebook under strict nbval, browser tests"
	@echo "make execute  re-run every notebook in place in a fresh kernel (authors)"
	@echo "make student  write student copies of the notebooks (solutions removed) to student/"
	@echo "make bench    run the benchmarks, print the table, write docs/benchmarks.md"
	@echo "make clean    remove caches, test artifacts and student copies"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) $(ROOTFLAG) 00_welcome.ipynb

lint: $(STAMP)
	$(BIN)/ruff check course_lib tests benchmarks notebooks
	$(BIN)/ruff format --check course_lib tests benchmarks

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not browser" tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -q $(NBVAL) notebooks

browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser tests

test: lint unit nbval browser

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 notebooks/*.ipynb

student: $(STAMP)
	$(BIN)/python -m course_lib.student notebooks student

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf .pytest_cache .ruff_cache test-artifacts student build *.egg-info
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
