# Routine tasks. Every target uses the project's virtualenv (.venv); `make setup` makes it.
VENV := .venv/bin

.PHONY: setup demo up down status test unit lint format generate bench
setup:     ; bash scripts/setup.sh
demo:      ; bash scripts/demo.sh
up:        ; $(VENV)/salespulse stack up
down:      ; $(VENV)/salespulse stack down
status:    ; $(VENV)/salespulse stack status
test:      ; bash scripts/test.sh
unit:      ; $(VENV)/pytest -m "not services"
lint:      ; $(VENV)/ruff check . && $(VENV)/ruff format --check . && $(VENV)/mypy
format:    ; $(VENV)/ruff format . && $(VENV)/ruff check --fix .
generate:  ; $(VENV)/salespulse generate
bench:     ; $(VENV)/python -m bench.run
