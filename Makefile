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

# Two workers, a whole test file each (--dist loadfile: a file's real-process network and its fixed
# ports stay in one worker). Most integration tests wait on block commits, so two workers on the
# 2-core test machine halve the suite's wall time; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

testnet: $(STAMP)
	$(PY) scripts/testnet.py up --validators 4

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
