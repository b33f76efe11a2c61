# The two commands of the README:
#   make demo   install into .venv, then run the whole pipeline on the demo corpus
#   make test   install into .venv (if needed), then run the tests
SHELL := /bin/bash
VENV ?= .venv
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo test test-all test-gpu clean-outputs

install:
	@scripts/install.sh

demo: install
	dvc repro
	@abaw summary

test: install
	scripts/run_tests.sh

test-all: install
	scripts/run_tests.sh -m ""

test-gpu: install  # the tiny pipeline on CUDA vs CPU, then `abaw predict` (skipped without CUDA)
	scripts/run_tests.sh -m gpu

clean-outputs:
	rm -rf data/raw metrics plots models
