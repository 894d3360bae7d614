VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test testnet clean

# The first run installs for about a minute with pip quiet: say so before it starts.
$(STAMP): pyproject.toml
	@echo "installing paynet and its dependencies into $(VENV)/ (about a minute, first time only) ..."
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

testnet: $(STAMP)
	$(PY) scripts/testnet.py up --validators 4

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
