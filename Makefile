# corral: `make run` starts corral on the simulator; `make test` runs the whole suite.
CONFIG ?= examples/quickstart.yaml
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=
# test processes running the suite at once (pytest-xdist); 1 runs it in this process, in order
TEST_WORKERS ?= 2

.PHONY: run test lint venv test-deps vcsim bench docs clean

venv:
	@scripts/bootstrap.sh

run: venv
	.venv/bin/corral serve --config $(CONFIG) --host $(HOST) --port $(PORT)

# the Debian packages first: libvirt-python (the libvirt extra) is compiled against libvirt-dev
test-deps:
	@scripts/system-packages.sh
	@scripts/bootstrap.sh test,bench,libvirt

# vcsim, VMware's vCenter simulator, for the vSphere tests (Go and govmomi from Debian)
build/vcsim: tools/vcsim/main.go
	@mkdir -p build
	cd tools/vcsim && GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=$(CURDIR)/build/gocache go build -o $(CURDIR)/build/vcsim .

vcsim: build/vcsim

# lint and import order (ruff), types (mypy, strict on the pure rooms; see pyproject.toml)
lint: test-deps
	.venv/bin/ruff check src tests
	.venv/bin/mypy

test: test-deps vcsim lint
	.venv/bin/python -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist worksteal) $(PYTEST_ARGS)

bench: venv
	.venv/bin/corral bench fill --output docs/benchmarks.md

# docs/configuration.md's tables of keys, from the configuration model (a test checks them)
docs: venv
	.venv/bin/python -m corral.config.docs --output docs/configuration.md

clean:
	rm -rf .venv var .pytest_cache build
