# The two commands of the README: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Wheels built here (e.g. llama-cpp-python later) are cached under .cache/ so reinstalls are quick.
# CI keeps its cache outside the clean checkout (PIP_CACHE in .ci/run), so a run downloads nothing it had before.
PIP_CACHE ?= .cache/pip
PIP_FLAGS := --disable-pip-version-check --cache-dir $(PIP_CACHE) -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo agent-demo test verified lint bench clean venv system-deps lock orchestrators dev-venv-cached

$(VENV)/bin/activate:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 2; }
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins every dependency to the versions the suite passed with: without it pip's resolver
# can backtrack for many minutes over the cloud SDKs' botocore/fsspec ranges.
$(VENV)/.installed-%: pyproject.toml constraints.txt | $(VENV)/bin/activate
	$(PIP) install $(PIP_FLAGS) --find-links $(WHEELS) -c constraints.txt -e '.[$*]'
	@touch $@

# llama-cpp-python ships only an sdist: build it once into $(WHEELS) (portable: no -march=native). It takes
# about 6 minutes on 2 cores; CI points WHEELS at a folder that outlives its clean checkouts.
WHEELS ?= .cache/wheels
LLAMA_CPP_VERSION := 0.3.36
LLAMA_WHEEL_STAMP := $(WHEELS)/.llama-cpp-python-$(LLAMA_CPP_VERSION)
$(LLAMA_WHEEL_STAMP): | $(VENV)/bin/activate
	mkdir -p $(WHEELS)
	CMAKE_ARGS="-DGGML_NATIVE=off" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) wheel $(PIP_FLAGS) --no-deps \
	  -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	@touch $@
$(VENV)/.installed-dev: $(LLAMA_WHEEL_STAMP)
$(VENV)/.installed-agent-demo: $(LLAMA_WHEEL_STAMP)

# With VENV_CACHE set (CI sets it outside its clean checkout: see .ci/run), `make test` and `make verified` keep the
# dev venv there, built once under a name that holds the hash of pyproject.toml, the lock and the Python, and link
# .venv to it; each run points its editable install at the checkout it runs in. A changed dependency builds anew.
# The cache must be reachable by other users: PostgreSQL's initdb (pgserver) and the sandbox's tests run unprivileged.
VENV_CACHE_CHECK = d="$(abspath $(VENV_CACHE))"; while [ "$$d" != / ]; do d=$$(dirname "$$d"); \
  if [ -d "$$d" ] && [ "$$(stat -c %A "$$d" | cut -c10)" = - ]; then \
    echo "error: VENV_CACHE=$(VENV_CACHE) lies under $$d, which other users cannot enter; PostgreSQL (pgserver) and the sandbox's tests run unprivileged and need the venv's files: choose a folder outside it (.ci/run uses /var/cache/flightdeck/venvs)"; exit 2; fi; done
VENV_KEY = $$(cat $(1) | $(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read() + sys.version.encode() + b"$(2)").hexdigest()[:16])')
DEV_VENV := $(if $(VENV_CACHE),dev-venv-cached,$(VENV)/.installed-dev)
dev-venv-cached:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 2; }
	@set -e; $(VENV_CACHE_CHECK); dir="$(abspath $(VENV_CACHE))/dev-$(call VENV_KEY,pyproject.toml constraints.txt,)"; \
	if [ -e $(VENV) ] && [ ! -L $(VENV) ]; then \
	  echo "error: $(VENV) is a folder of its own; remove it to keep the venv under VENV_CACHE=$(VENV_CACHE)"; exit 2; fi; \
	if [ ! -f "$$dir/.complete" ]; then echo "building $$dir"; rm -rf "$$dir"; mkdir -p "$$(dirname "$$dir")"; \
	  $(PYTHON) -m venv "$$dir"; fi; \
	ln -sfn "$$dir" $(VENV); \
	if [ ! -f "$$dir/.complete" ]; then \
	  $(MAKE) --no-print-directory $(LLAMA_WHEEL_STAMP); \
	  $(PIP) install $(PIP_FLAGS) --find-links $(WHEELS) -c constraints.txt -e '.[dev]'; \
	  touch "$$dir/.complete" $(VENV)/.installed-dev; \
	else echo "using $$dir"; $(PIP) install $(PIP_FLAGS) --no-deps -e .; fi

# Refresh the lock from the dev venv after changing dependencies (then run make test from a fresh clone).
lock: $(VENV)/.installed-dev
	{ head -2 constraints.txt; $(PIP) freeze --exclude-editable | grep -v '^-e'; } > constraints.tmp
	mv constraints.tmp constraints.txt

demo: $(VENV)/.installed-demo
	$(VENV)/bin/flightdeck validate --spec examples/python-docs
	$(VENV)/bin/flightdeck run --spec examples/python-docs
	@for q in "How do I create a virtual environment?" \
	          "How do I sort a list of records by a key?" \
	          "Why should I use the with statement when opening files?"; do \
	  echo; echo "Q: $$q"; $(VENV)/bin/flightdeck ask --spec examples/python-docs "$$q" || exit 1; \
	done
	@echo; echo "Evaluation on the hand-written set examples/python-docs/eval/questions.jsonl:"
	$(VENV)/bin/flightdeck eval --gate --spec examples/python-docs

# The python-docs assistant as a tool-using agent (examples/python-docs/agent.yaml): its pages' index and a SQL
# database of Python's releases, read by the packaged Gemma 3 270M (slow and weak: see the README's Agents section).
agent-demo: $(VENV)/.installed-agent-demo
	$(VENV)/bin/flightdeck validate --spec examples/python-docs/agent.yaml
	$(VENV)/bin/flightdeck run --spec examples/python-docs/agent.yaml
	$(VENV)/bin/flightdeck agent --spec examples/python-docs/agent.yaml \
	  "When does Python 3.11 reach its end of life, and how do I create a virtual environment in it?" \
	  || echo "(no answer this time: the packaged 270M model is weak; see the README's Agents section)"

# Debian packages the tests need (OCR, a browser, Prometheus). Installed only when missing; CI runs as root.
system-deps:
	@command -v tesseract >/dev/null || { \
	  echo "installing tesseract-ocr (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null; }
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (apt-get), for the playground's browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x /usr/bin/prometheus || { \
	  echo "installing prometheus (apt-get), which scrapes flightdeck serve's /metrics in a test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus >/dev/null; }
	@command -v bwrap >/dev/null || { \
	  echo "installing bubblewrap (apt-get), the isolation of the python sandbox tool (agents/tools/sandbox.py)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }

# The orchestrators that `flightdeck export` writes for and the tests run (Dagster is in the dev venv): each in a
# virtualenv of its own, locked by constraints-<name>.txt, since Prefect 3 pins an older FastAPI than flightdeck's
# server and Airflow 3.1 fails with the dev venv's structlog. The exported tasks run the flightdeck CLI by path, so
# these venvs never import flightdeck; tests/improvement/test_orchestrators.py skips, saying why, without them.
# With VENV_CACHE set (CI sets it outside its clean checkout), each is built once under a name holding the hash of
# its lock and linked here, so a run rebuilds one only when its lock changed.
ORCHESTRATOR_airflow := apache-airflow==3.1.0
ORCHESTRATOR_prefect := prefect==3.9.1
VENV_CACHE ?=
.venv-%/.installed: constraints-%.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 2; }
	@set -e; \
	if [ -z "$(VENV_CACHE)" ]; then dir=.venv-$*; rm -rf $$dir; else $(VENV_CACHE_CHECK); \
	  dir="$(abspath $(VENV_CACHE))/$*-$(call VENV_KEY,constraints-$*.txt,$(ORCHESTRATOR_$*))"; fi; \
	if [ ! -f "$$dir/.complete" ]; then \
	  echo "building $$dir ($(ORCHESTRATOR_$*))"; rm -rf "$$dir"; $(PYTHON) -m venv "$$dir"; \
	  "$$dir/bin/python" -m pip install $(PIP_FLAGS) -c constraints-$*.txt '$(ORCHESTRATOR_$*)'; touch "$$dir/.complete"; \
	else echo "using $$dir"; fi; \
	if [ "$$dir" != .venv-$* ]; then rm -rf .venv-$*; ln -s "$$dir" .venv-$*; fi
	@touch $@
orchestrators: .venv-airflow/.installed .venv-prefect/.installed

# The suite also checks src/flightdeck/spec/verified.json, the proof `flightdeck checklist` reads (which options'
# marked tests passed, needing what): a full run fails when the file and the run disagree.
test: $(DEV_VENV) system-deps orchestrators
	$(PY) -m pytest -q

# After adding, removing or renaming a test marked @pytest.mark.exercises: rewrite the proof from a full green run.
verified: $(DEV_VENV) system-deps orchestrators
	$(PY) -m pytest -q --update-verified

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/ingest_throughput.py

clean:
	rm -rf $(VENV) .venv-airflow .venv-prefect .pytest_cache examples/python-docs/.flightdeck
