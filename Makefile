# kollm: two commands.
#   make demo   -> set up .venv + .venv-serve, run the whole pipeline (preset tiny) on CPU
#   make test   -> set up the same environments (+ .venv-automodel) + pytest, run the test suite
#   make env-automodel -> NeMo AutoModel's own environment, for finetune.backend=automodel
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SERVE_VENV := .venv-serve
AUTOMODEL_VENV := .venv-automodel
PRESET ?= tiny
# pip's chatter about local index folders is noise here
PIP_QUIET := -q --disable-pip-version-check
# where torch comes from; containers/Dockerfile.cpu points it at PyTorch's CPU index
TORCH_INDEX ?=

.PHONY: demo test env env-automodel clean

demo: env
	$(VENV)/bin/kollm run pipeline preset=$(PRESET)

test: env env-automodel $(VENV)/.test-installed
	bash tests/install_slurm.sh
	bash tests/install_browser.sh
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

env: $(VENV)/.installed $(SERVE_VENV)/.installed

env-automodel: $(AUTOMODEL_VENV)/.installed

# torch is installed on its own first, so no other requirement can pull a CUDA build.
# $(call make-venv,DIR,REQUIREMENTS)
define make-venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install $(PIP_QUIET) $(TORCH_INDEX) torch==2.13.0
	$(1)/bin/pip install $(PIP_QUIET) -r $(2)
	$(1)/bin/pip install $(PIP_QUIET) --no-deps --no-build-isolation -e .
	touch $(1)/.installed
endef

$(VENV)/.installed: requirements/train.txt pyproject.toml
	$(call make-venv,$(VENV),requirements/train.txt)

$(SERVE_VENV)/.installed: requirements/serve.txt pyproject.toml
	$(call make-venv,$(SERVE_VENV),requirements/serve.txt)

$(AUTOMODEL_VENV)/.installed: requirements/automodel.txt pyproject.toml
	$(call make-venv,$(AUTOMODEL_VENV),requirements/automodel.txt)

$(VENV)/.test-installed: requirements/test.txt $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_QUIET) -r requirements/test.txt
	touch $@

clean:
	rm -rf $(VENV) $(SERVE_VENV) $(AUTOMODEL_VENV) runs
