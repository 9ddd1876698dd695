# Everyday targets. `bash scripts/bootstrap.sh setup` installs everything first.
PYTHON ?= .venv/bin/python
P4C ?= p4c-bm2-ss

.PHONY: setup test unit lint typecheck proto p4 demo clean

setup:
	bash scripts/bootstrap.sh setup

test:
	$(PYTHON) -m pytest

unit:
	$(PYTHON) -m pytest tests/unit

lint:
	$(PYTHON) -m ruff check controller switchd lab tests bench
	$(PYTHON) -m ruff format --check controller switchd lab tests bench

typecheck:
	$(PYTHON) -m mypy

# Python stubs for our own .proto files (the northbound API).
PROTOS := $(wildcard controller/*.proto controller/*/*.proto)
proto: $(PROTOS:.proto=_pb2.py)

%_pb2.py: %.proto
	$(PYTHON) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. $<

# Regenerate p4/build/ from p4/srv6.p4 with p4c (not in any registry; see p4/README.md).
p4:
	@command -v $(P4C) >/dev/null || { echo "make p4: $(P4C) is not on PATH; p4/build/ was not regenerated (see p4/README.md)" >&2; exit 1; }
	$(P4C) --arch v1model --std p4-16 -o p4/build/srv6.json \
	    --p4runtime-files p4/build/srv6.p4info.txtpb p4/srv6.p4

demo:
	$(PYTHON) -m lab.cli demo

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
