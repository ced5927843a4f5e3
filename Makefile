# fanout: `make test` runs every check CI runs. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MOTO_SERVER := $(CURDIR)/tools/moto/moto-server
export CARGO_TERM_COLOR ?= never

.PHONY: test lint unit dev-tools fmt clean doctor

## doctor: what this machine needs (Rust, Python and venv, disk, ports, the dev tools), and what to do about each missing piece
doctor:
	@bash tools/doctor.sh

## test: formatting, lints, template checks, unit and integration tests (against moto server),
## the short chaos run, each fuzz target for 3 s on its seeds, the demo
test: dev-tools aws-cli lint infra-check
	cargo build --workspace --bins
	cargo test --workspace --all-targets --no-fail-fast
	$(MAKE) --no-print-directory chaos-short
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory demo

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## dev-tools: the pinned Python tools (moto server, cargo-lambda) in .venv
dev-tools: $(VENV)/.dev-tools

$(VENV)/.dev-tools: requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## aws-cli: the pinned AWS CLI in .venv-aws (its own venv: it pins a botocore moto cannot share)
AWS_VENV := .venv-aws
.PHONY: aws-cli
aws-cli: $(AWS_VENV)/.installed

$(AWS_VENV)/.installed: requirements-aws.txt
	test -x $(AWS_VENV)/bin/python || $(PYTHON) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-aws.txt
	touch $@

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) $(INFRA_VENV) $(AWS_VENV) .tools fuzz/target

# --- Infrastructure: infra/template.yaml -------------------------------------------------------
# The template tools live in their own venvs: checkov pins a boto3 that aws-sam-cli cannot share.
INFRA_VENV := .venv-infra
SAM := $(CURDIR)/$(INFRA_VENV)/sam/bin/sam
CFN_LINT := $(CURDIR)/$(INFRA_VENV)/sam/bin/cfn-lint
CHECKOV := $(CURDIR)/$(INFRA_VENV)/checkov/bin/checkov
# No AWS account is needed or contacted: a region for the validators, no telemetry.
INFRA_ENV := AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true

.PHONY: infra-check infra-tools sam-build

## infra-check: sam validate --lint, cfn-lint with the serverless rules, and checkov on the template
infra-check: infra-tools
	cd infra && $(INFRA_ENV) $(SAM) validate --lint --template template.yaml
	cd infra && $(INFRA_ENV) $(CFN_LINT) --append-rules cfn_lint_serverless.rules -- template.yaml
	cd infra && $(INFRA_ENV) $(CHECKOV) --config-file .checkov.yaml

## infra-tools: the pinned template tools (aws-sam-cli, cfn-lint, cfn-lint-serverless, checkov) in .venv-infra
infra-tools: $(INFRA_VENV)/sam/.installed $(INFRA_VENV)/checkov/.installed

$(INFRA_VENV)/sam/.installed: infra/requirements.txt
	test -x $(INFRA_VENV)/sam/bin/python || $(PYTHON) -m venv $(INFRA_VENV)/sam
	$(INFRA_VENV)/sam/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

$(INFRA_VENV)/checkov/.installed: infra/requirements-checkov.txt
	test -x $(INFRA_VENV)/checkov/bin/python || $(PYTHON) -m venv $(INFRA_VENV)/checkov
	$(INFRA_VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

## sam-build: `sam build` of every function for arm64 (cargo-lambda with Zig, from .venv) into infra/.aws-sam/
sam-build: dev-tools infra-tools
	@command -v rustup >/dev/null || { echo "sam-build: rustup is needed to add the aarch64-unknown-linux-gnu target" >&2; exit 1; }
	rustup target add aarch64-unknown-linux-gnu
	cd infra && $(INFRA_ENV) $(SAM) build --beta-features --template template.yaml

## bench-words: the word-count benchmarks (release functions under a fake Lambda Runtime API,
## moto behind a proxy adding 5 ms per request): one message at a time, then the load run (50
## Slack messages a second for 60 s, the multiplier consuming; WORDS_LOAD_ARGS to change it);
## method and results in docs/performance.md
.PHONY: bench-words
bench-words: dev-tools
	cargo build --release -p slack-counter -p sns-multiplier -p fanout-bench
	target/release/counter-bench --counter-bin target/release/slack-counter
	target/release/words-load $(WORDS_LOAD_ARGS)

## bench-copy: the S3 bulk-copy benchmark: s3-copy against `aws s3 cp` (AWS CLI from PyPI, in
## .venv-aws) and rclone (Debian) through the latency proxy's S3 copy model; docs/performance.md
.PHONY: bench-copy
bench-copy: dev-tools aws-cli
	command -v rclone >/dev/null || apt-get install -y rclone || { apt-get update && apt-get install -y rclone; }
	cargo build --release -p s3-copy -p fanout-bench
	$(VENV)/bin/python bench/copy_bench.py --aws-bin $(AWS_VENV)/bin/aws $(COPY_BENCH_ARGS)

## bench-fanout-sim: the copy fan-out on the same model in virtual time (the copy code is
## fanout-copy-core's own; S3, the queue and Lambda simulated): (c) one 5 TiB object, (d) the
## original's nightly and backfill workloads; a second of CPU; docs/performance.md
.PHONY: bench-fanout-sim
bench-fanout-sim:
	cargo build --release -p fanout-bench --bin fanout-sim
	target/release/fanout-sim --json bench/results/fanout-sim.json $(FANOUT_SIM_ARGS)


# --- Chaos: the real functions with AWS misbehaving; docs/reliability.md --------------------
# Faults the proxy injects into every AWS request of the functions (a share of requests each):
# throttling, 500s, a reset after the emulator applied the request, a request never answered.
CHAOS_WORDS_FAULTS ?= throttle=0.1,reset=0.02,hang=0.005,seed=1
CHAOS_COPY_FAULTS ?= throttle=0.1,500=0.02,reset=0.02,hang=0.005,seed=1
CHAOS_DIR := target/chaos
FUNCTION_CRATES := -p slack-counter -p sns-multiplier -p s3-fanout -p s3-copier
.PHONY: chaos chaos-short load

## chaos: the chaos suite on release builds: 300 Slack messages through slack-counter and the
## multiplier, then a 200-object backup (20 multipart, 3 objects deleted after listing) through
## s3-fanout and s3-copier, each with faults and the emulator down for 5 s in the middle; every
## promise checked (exact counts, every object copied or reported, no upload left open, no
## message lost, no crash or panic); figures in target/chaos/*.txt
chaos: dev-tools
	cargo build --release $(FUNCTION_CRATES) -p fanout-bench
	mkdir -p $(CHAOS_DIR) && rm -f $(CHAOS_DIR)/words.log $(CHAOS_DIR)/copy.log
	set -o pipefail; target/release/words-load --rate 30 --seconds 10 --counters 8 --multipliers 2 \
	  --faults $(CHAOS_WORDS_FAULTS) --down-at-s 4 --down-for-s 5 --log $(CHAOS_DIR)/words.log \
	  | tee $(CHAOS_DIR)/words.txt
	set -o pipefail; target/release/copy-chaos --objects 200 --multipart 20 --vanish 3 --copiers 4 \
	  --faults $(CHAOS_COPY_FAULTS) --down-at-s 5 --down-for-s 5 --log $(CHAOS_DIR)/copy.log \
	  | tee $(CHAOS_DIR)/copy.txt

## chaos-short: the chaos suite, small, on the debug builds `make test` has made (part of it)
chaos-short: dev-tools
	mkdir -p $(CHAOS_DIR) && rm -f $(CHAOS_DIR)/words-short.log $(CHAOS_DIR)/copy-short.log
	target/debug/words-load --rate 20 --seconds 3 --counters 4 --multipliers 2 \
	  --counter-bin target/debug/slack-counter --multiplier-bin target/debug/sns-multiplier \
	  --faults $(CHAOS_WORDS_FAULTS) --down-at-s 1 --down-for-s 3 --log $(CHAOS_DIR)/words-short.log
	target/debug/copy-chaos --objects 40 --multipart 4 --vanish 3 --copiers 3 --bin-dir target/debug \
	  --faults $(CHAOS_COPY_FAULTS) --down-at-s 2 --down-for-s 3 --log $(CHAOS_DIR)/copy-short.log

## load: the sustained run: Slack traffic at the HTTP API's throttle limit (the template's
## SlackRateLimit, 50 a second) for 10 minutes, with a 200-object backup run beside it; each
## function's memory sampled (LOAD_RATE, LOAD_SECONDS to change it); target/chaos/load-*.txt
LOAD_RATE ?= 50
LOAD_SECONDS ?= 600
load: dev-tools
	cargo build --release $(FUNCTION_CRATES) -p fanout-bench
	mkdir -p $(CHAOS_DIR) && rm -f $(CHAOS_DIR)/load-words.log $(CHAOS_DIR)/load-copy.log
	target/release/copy-chaos --objects 200 --multipart 20 --vanish 0 --faults "" --memory-every-s 30 \
	  --log $(CHAOS_DIR)/load-copy.log > $(CHAOS_DIR)/load-copy.txt 2>&1 & copy=$$!; \
	target/release/words-load --rate $(LOAD_RATE) --seconds $(LOAD_SECONDS) --memory-every-s 30 \
	  --drain-timeout-s 1800 --log $(CHAOS_DIR)/load-words.log > $(CHAOS_DIR)/load-words.txt 2>&1; words=$$?; \
	wait $$copy; copied=$$?; tail -25 $(CHAOS_DIR)/load-words.txt; tail -12 $(CHAOS_DIR)/load-copy.txt; \
	test $$words -eq 0 && test $$copied -eq 0

# --- Fuzzing: cargo-fuzz (libFuzzer) on the nightly toolchain; docs/reliability.md -------------
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := slack_request tokenize words_message copy_job location_and_size part_layout function_events
CARGO_FUZZ := $(CURDIR)/.tools/bin/cargo-fuzz
.PHONY: fuzz fuzz-smoke fuzz-tools

## fuzz-tools: cargo-fuzz, pinned, in .tools (the nightly toolchain comes with rustup)
fuzz-tools: $(CARGO_FUZZ)

$(CARGO_FUZZ):
	cargo install --locked --root .tools cargo-fuzz --version 0.13.2

## fuzz: every fuzz target for FUZZ_SECONDS each (60 by default); a crash fails, saved in fuzz/artifacts/
fuzz: fuzz-tools
	for target in $(FUZZ_TARGETS); do bash tools/fuzz.sh $$target $(FUZZ_SECONDS) || exit 1; done

## fuzz-smoke: every target for a few seconds on its corpus (part of make test)
fuzz-smoke: fuzz-tools
	for target in $(FUZZ_TARGETS); do bash tools/fuzz.sh $$target 3 || exit 1; done

# --- Local stack: the whole suite on this machine ----------------------------------------------
# cargo lambda watch runs `cargo run --bin <function>`; building each the same way first makes
# the stack start in seconds.
FUNCTIONS := slack-counter sns-multiplier sns-logger slack-replier s3-fanout s3-copier
.PHONY: demo up local-bins

## demo: start moto + cargo lambda watch + the template's wiring, play the scripted scenario, stop
demo: dev-tools local-bins
	target/debug/fanout-local demo

## up: the same stack, kept running for interactive use until Ctrl-C
up: dev-tools local-bins
	target/debug/fanout-local up

local-bins:
	cargo build -p fanout-local -p fanout-smoke
	for function in $(FUNCTIONS); do cargo build --bin $$function || exit 1; done
