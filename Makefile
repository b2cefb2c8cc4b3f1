# The README's two commands: `make demo` and `make test`. Both create .venv and install the
# package from this repository's own files, with the tested pins in constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test clean

# pip byte-compiles at install: on a fresh clone `make test` took 227 s with it and 302 s with --no-compile,
# where the suite's many processes compiled torch and Ray as they imported them.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,ray,onnx,spandrel]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n 2  # one process per core (pytest-xdist): most tests wait on subprocesses or single-threaded Python

demo: $(STAMP)
	mkdir -p examples/out
	$(VENV)/bin/restore denoise examples/demo-noisy.png -o examples/out/demo-noisy.denoised.png --overwrite
	$(VENV)/bin/restore upscale examples/demo-small.png --x2 -o examples/out/demo-small.x2.png --overwrite

clean:
	rm -rf $(VENV) dist build examples/out
