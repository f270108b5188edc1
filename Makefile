# disposition-sync: set-up, tests, lint, local runs and deployment. `make` lists the targets.
#
# Python tools live in .venv (created here with python3 -m venv, pinned versions); scratch files
# (pids, logs, the local world's env and ready files) live in .local/. Both are gitignored.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# One shell per recipe: the local-world recipes need a trap that outlives a single line.
.ONESHELL:
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(CURDIR)/$(VENV)/bin
LOCAL  := .local
TARGET := $(or $(CARGO_TARGET_DIR),target)
EVENT  ?= events/manual-sync.json
# The CXone API the local world speaks: admin (the real Admin API) or guide.
CXONE_API ?= admin

MOTO_PIN  := 'moto[server]==5.2.5' boto3
TOOLS_PIN := 'cfn-lint==1.58.0' 'aws-sam-cli==1.170.0' 'cargo-lambda==1.9.2'
PIP       := $(PY)/pip install --quiet --disable-pip-version-check

export SAM_CLI_TELEMETRY := 0

# Shell helpers shared by the recipes that run the local world in the background. `start_world`
# writes .local/world.pid; `stop_all` kills every process group named by a .local/*.pid file
# (each was started as its own group) and is installed as an EXIT trap, so nothing outlives the
# recipe, whether it succeeds, fails or is interrupted.
define WORLD_HELPERS
stop_all() {
  for pidfile in $(LOCAL)/*.pid; do
    [ -f "$$pidfile" ] || continue
    pid=$$(cat "$$pidfile")
    kill -TERM -- "-$$pid" 2>/dev/null || true
    wait "$$pid" 2>/dev/null || true
    rm -f "$$pidfile"
  done
}
start_world() {  # $$1 = number of CXone codes to seed
  rm -f $(LOCAL)/world.ready $(LOCAL)/world.env
  MOTO_SERVER=$(PY)/moto_server $(TARGET)/debug/local-world --cxone-api "$(CXONE_API)" --seed "$$1" \
    --env-file $(LOCAL)/world.env --ready-file $(LOCAL)/world.ready \
    >$(LOCAL)/world.json 2>$(LOCAL)/world.log &
  echo $$! >$(LOCAL)/world.pid
  for _ in $$(seq 300); do
    [ -f $(LOCAL)/world.ready ] && break
    kill -0 "$$(cat $(LOCAL)/world.pid)" 2>/dev/null || { cat $(LOCAL)/world.log >&2; echo "local-world failed to start" >&2; return 1; }
    sleep 0.1
  done
  [ -f $(LOCAL)/world.ready ] || { cat $(LOCAL)/world.log >&2; echo "local-world not ready after 30 s" >&2; return 1; }
  set -a; . $(LOCAL)/world.env; set +a
}
start_watch() {  # cargo lambda's Lambda emulator on a free loopback port; sets $$port
  port=$$(free_port)
  PATH="$(PY):$$PATH" cargo lambda watch -A 127.0.0.1 -P "$$port" --timeout 900 --bin disposition-sync \
    >$(LOCAL)/watch.log 2>&1 &
  echo $$! >$(LOCAL)/watch.pid
  # Wait for it to listen: a bare TCP connect, because any HTTP request to it would invoke the
  # function.
  for _ in $$(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$$port") 2>/dev/null && return 0
    kill -0 "$$(cat $(LOCAL)/watch.pid)" 2>/dev/null || { cat $(LOCAL)/watch.log >&2; return 1; }
    sleep 0.1
  done
  cat $(LOCAL)/watch.log >&2; echo "cargo lambda watch did not listen within 60 s" >&2; return 1
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
endef
export WORLD_HELPERS

.PHONY: help setup setup-tools demo test lint soak bench build lambda-check local-invoke sam-local-invoke deploy clean

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'
	echo
	echo "  EVENT=path selects the event of local-invoke and sam-local-invoke (default $(EVENT))."
	echo "  CXONE_API=admin|guide selects the CXone API of the local world (default $(CXONE_API))."

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# Depends on this file so that a changed pin is installed by the next run.
$(VENV)/.setup.done: Makefile | $(VENV)/bin/python
	$(PIP) $(MOTO_PIN)
	touch $@

$(VENV)/.tools.done: $(VENV)/.setup.done
	$(PIP) $(TOOLS_PIN)
	touch $@

setup: $(VENV)/.setup.done ## Install moto server (pinned) into .venv; the tests need it
setup-tools: $(VENV)/.tools.done ## Also install cfn-lint, AWS SAM CLI and cargo-lambda (pinned) for lint/build/deploy

test: setup ## Run every test; the tests start their own moto server and simulators
	MOTO_SERVER=$(PY)/moto_server cargo test --workspace

lint: setup-tools ## rustfmt, clippy (warnings are errors), cfn-lint and sam validate --lint
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PY)/cfn-lint template.yaml
	$(PY)/sam validate --lint -t template.yaml

# make soak: the kill test twice (once per CXone API) and the property test with long runs.
SOAK_KILL_TRIALS ?= 500
SOAK_CASES ?= 256

soak: setup ## Not in CI (minutes): 1,000 SIGKILL trials and a long property run (edits during fetches, future-dated records among the faults); prints their figures
	mkdir -p $(LOCAL)
	MOTO_SERVER=$(PY)/moto_server KILL_TRIALS=$(SOAK_KILL_TRIALS) PROPTEST_CASES=$(SOAK_CASES) \
	  cargo test --test it -- kill:: props::random --nocapture 2>&1 | tee $(LOCAL)/soak.log \
	  | grep -E '^soak:|^test result:'

# make bench: cargo builds the release binary with the driver (benches/cycle/), which runs it as
# a child process; the table also lands in .local/bench.md.
bench: setup ## Not in CI (about 10 minutes): the release binary against the local world, 300 to 100,000 codes at 0 and 20 ms per request; prints the performance table and fails naming each missed target
	mkdir -p $(LOCAL)
	# The binary as deployed: built alone, so that no dev-dependency's features are unified in.
	cargo build --release --bin disposition-sync
	cp $(TARGET)/release/disposition-sync $(LOCAL)/disposition-sync-bench
	DISPOSITION_BENCH_BINARY=$(CURDIR)/$(LOCAL)/disposition-sync-bench MOTO_SERVER=$(PY)/moto_server \
	  cargo bench --bench cycle | tee $(LOCAL)/bench.md

build: setup-tools ## Build the release arm64 Lambda bootstrap (target/lambda/disposition-sync/bootstrap)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(PY):$$PATH" cargo lambda build --release --arm64 --bin disposition-sync

demo: ## The story in a screenful, against the local world (CXONE_API=admin|guide): plan, sync, three edits in CXone, plan, sync, status
	@eval "$$WORLD_HELPERS"
	mkdir -p $(LOCAL)
	if [ ! -f $(VENV)/.setup.done ]; then
	  echo "== setup: installing moto server (local AWS: DynamoDB, SQS, Secrets Manager) into $(VENV); first run only, about a minute"
	fi
	$(MAKE) -s --no-print-directory setup
	echo "== build: compiling disposition-sync and the CXone and Salesforce simulators (a few minutes the first time)"
	cargo build --workspace --bins --quiet
	trap stop_all EXIT
	trap 'exit 130' INT TERM
	echo "== local world: moto, a CXone simulator ($(CXONE_API) API) with 300 codes, an empty Salesforce org"
	# A separate process group per background process, so that stop_all can kill each by its id.
	set -m
	start_world 300
	set +m
	run() {  # $$1 = event file, $$2 = name of the .local/ output files; prints the text summary
	  $(TARGET)/debug/disposition-sync invoke --format text --event "$$1" >$(LOCAL)/$$2.txt 2>$(LOCAL)/$$2.log || {
	    echo "disposition-sync failed on $$1; output and last log lines:" >&2
	    cat $(LOCAL)/$$2.txt >&2; tail -n 20 $(LOCAL)/$$2.log >&2; return 1
	  }
	  cat $(LOCAL)/$$2.txt
	}
	echo
	echo "== 1. plan the first sync (a dry run: nothing is written)"
	run events/plan.json plan-first
	echo
	echo "== 2. sync"
	run events/full-sync.json sync-first
	# Rename the first code, deactivate the second and add one, through the simulator's control
	# routes, which speak the world's API (its ids and shapes) whichever it is.
	sim="$${CXONE_ISSUER:-$${CXONE_BASE_URL:-}}"
	codes=$$(curl -fsS "$$sim/_sim/codes" \
	  | python3 -c 'import json, sys; c = json.load(sys.stdin)[:2]; print(c[0]["external_id"], c[1]["external_id"], c[0]["name"], "|", c[1]["name"])')
	read -r first second names <<<"$$codes"
	curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
	  -d '{"name": "Renamed in the demo"}' "$$sim/_sim/dispositions/$$first/rename"
	curl -fsS -o /dev/null -X POST "$$sim/_sim/dispositions/$$second/deactivate"
	curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
	  -d '{"name": "Added in the demo", "category": "Sales", "is_active": true}' "$$sim/_sim/codes"
	echo
	echo "== 3. three edits in CXone: \"$${names%% | *}\" renamed to \"Renamed in the demo\", \"$${names##* | }\" deactivated, \"Added in the demo\" added"
	echo
	echo "== 4. plan the next sync: exactly those three"
	run events/plan.json plan-delta
	echo
	echo "== 5. sync"
	run events/manual-sync.json sync-delta
	echo
	echo "== 6. status"
	run events/status.json status
	curl -fsS "$$SF_LOGIN_URL/_sim/table" >$(LOCAL)/salesforce-table.txt
	echo
	echo "== the Salesforce table: $(LOCAL)/salesforce-table.txt; logs: $(LOCAL)/*.log"

local-invoke: setup-tools ## Invoke the function under cargo lambda watch, against the local world, with EVENT
	@eval "$$WORLD_HELPERS"
	mkdir -p $(LOCAL)
	cargo build -p disposition-sim --bin local-world
	trap stop_all EXIT
	trap 'exit 130' INT TERM
	set -m
	start_world 50
	start_watch
	set +m
	PATH="$(PY):$$PATH" cargo lambda invoke -A 127.0.0.1 -P "$$port" --data-file $(EVENT) disposition-sync
	echo
	echo "== function logs: $(LOCAL)/watch.log"

lambda-check: build ## Build the arm64 package, then run every events/ file through cargo lambda's runtime emulator
	@eval "$$WORLD_HELPERS"
	mkdir -p $(LOCAL)
	test -s $(TARGET)/lambda/disposition-sync/bootstrap
	file $(TARGET)/lambda/disposition-sync/bootstrap 2>/dev/null | grep -q aarch64 || \
	  python3 -c 'import sys; d = open(sys.argv[1], "rb").read(20); sys.exit(0 if d[:4] == b"\x7fELF" and int.from_bytes(d[18:20], "little") == 183 else 1)' \
	  $(TARGET)/lambda/disposition-sync/bootstrap
	echo "== arm64 bootstrap: $(TARGET)/lambda/disposition-sync/bootstrap"
	# The deploy path: sam build drives the same cargo-lambda build (in source, so incremental).
	PATH="$(PY):$$PATH" sam build
	test -s .aws-sam/build/SyncFunction/bootstrap
	echo "== sam build: .aws-sam/build/SyncFunction/bootstrap"
	cargo build -p disposition-sim --bin local-world
	trap stop_all EXIT
	trap 'exit 130' INT TERM
	set -m
	start_world 20
	start_watch
	set +m
	# Each trigger through the real runtime API emulation: a JSON response, never a function error.
	for event in events/scheduled.json events/manual-sync.json events/full-sync.json \
	             events/full-sync-allow-mass-change.json events/purge.json events/purge-execute.json \
	             events/redrive.json events/sqs-redrive.json events/plan.json events/status.json; do
	  PATH="$(PY):$$PATH" cargo lambda invoke -A 127.0.0.1 -P "$$port" --data-file "$$event" disposition-sync \
	    >$(LOCAL)/invoke.json 2>$(LOCAL)/invoke.log || { cat $(LOCAL)/invoke.log $(LOCAL)/watch.log >&2; exit 1; }
	  python3 - "$$event" $(LOCAL)/invoke.json <<-'PY'
		import json, sys
		event, path = sys.argv[1], sys.argv[2]
		response = json.load(open(path))
		assert "errorType" not in response, f"{event}: {response}"
		assert "status" in response or "batchItemFailures" in response, f"{event}: {response}"
		print(f"ok  {event}: {response.get('status', 'batchItemFailures=' + str(len(response.get('batchItemFailures', []))))}")
	PY
	done

sam-local-invoke: setup-tools ## Invoke SyncFunction in the Lambda container with EVENT and events/env.json (needs Docker)
	docker info >/dev/null 2>&1 || { echo "sam local invoke needs a running Docker (or Finch) engine" >&2; exit 1; }
	PATH="$(PY):$$PATH" sam build
	PATH="$(PY):$$PATH" sam local invoke SyncFunction -e $(EVENT) --env-vars events/env.json

deploy: setup-tools ## sam build and sam deploy (reads samconfig.toml: create it once with `sam deploy --guided`)
	PATH="$(PY):$$PATH" sam build
	PATH="$(PY):$$PATH" sam deploy

clean: ## Remove .local/ and .aws-sam/ (keeps .venv and the cargo target folder)
	rm -rf $(LOCAL) .aws-sam
