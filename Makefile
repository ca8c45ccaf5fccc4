# Two commands do all the set-up (see README.md):
#   make start   install everything, then run the portal, a worker and the LINE sandbox with demo tenants
#   make test    install everything, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: start test install browser lint bench clean

$(STAMP): pyproject.toml frontend/package.json
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }  # also repairs a venv cut short
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	cd frontend && npm install --no-audit --no-fund --silent
	touch $(STAMP)

install: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d saas/translations -f >/dev/null

browser:
	@command -v chromium >/dev/null && command -v pdftoppm >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk poppler-utils >/dev/null) || echo "chromium not installed: browser tests will be skipped (apt-get install chromium)"; }

start: install
	FLASK_APP=saas SANDBOX_ENABLED=1 $(BIN)/flask dev

test: install browser
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check saas tests && $(BIN)/ruff format --check saas tests

# Every benchmark, in the production configuration when DATABASE_URL and REDIS_URL are set
# (embedded defaults otherwise); one report with charts in bench-report/README.md.
bench: install
	$(BIN)/python -m tests.perf.report

clean:
	rm -rf $(VENV) frontend/node_modules instance
