# Every target bootstraps .venv from pyproject.toml on a fresh machine (Python 3.11+ is all it needs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test run lint migrate bench mutate clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sandbox

test: $(STAMP)
	$(BIN)/python -m pytest -n auto

run: $(STAMP)
	$(BIN)/python -m bot serve

migrate: $(STAMP)
	$(BIN)/python -m bot migrate

lint: $(STAMP)
	$(BIN)/ruff check bot handlers storage sandbox tests bench
	$(BIN)/mypy bot handlers storage sandbox tests
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench $(NAME) $(ARGS)

# Mutation testing of the pure rules ([tool.mutmut] in pyproject.toml) against the SQLite half of the suite,
# two mutants at a time; fails when a module scores below 90 %. Starts from scratch: mutmut keeps earlier
# verdicts when only the tests changed.
# TEST_POSTGRES_URL points nowhere so that no mutant run can reach a real database, even by mistake.
mutate: $(STAMP)
	rm -rf mutants
	@start=$$(date +%s); \
	TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:1/none $(BIN)/mutmut run --max-children 2 || exit $$?; \
	echo "mutmut run took $$(( $$(date +%s) - start )) s"
	$(BIN)/python -m bench.mutation_score --floor 90

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
