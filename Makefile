# The two quick-start commands of the README: `make demo` and `make test`.
# Both create .venv/ on first use and reinstall only when setup.cfg changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	-$(PY) -m lm_app.native  # the native training kernels; without a compiler, the XLA loops
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lm_app build-dict
	$(PY) -m lm_app train
	$(PY) -m lm_app predict "some of them looks like"

# Two workers, a test file each at a time (module fixtures train once): most tests wait on a
# subprocess's TensorFlow import or a tiny training, so two files at once fill the two cores.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf saved_models/vocab.* saved_models/lm
