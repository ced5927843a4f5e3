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
test: dev-tools aws-cli lint infra-check infra-expand
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
# Plain CloudFormation (no SAM transform, so no sam validate), checked with no cfn-lint rule
# ignored and no global checkov skip: a skip is a resource's Metadata, with its reason.
OPS_TEMPLATES := pipeline.yaml compliance.yaml

.PHONY: infra-check infra-tools sam-build infra-expand release-digests

## infra-check: sam validate --lint, cfn-lint with the serverless rules, and checkov on the template;
## cfn-lint with the informational checks, and checkov, on the pipeline and compliance stacks
infra-check: infra-tools
	cd infra && $(INFRA_ENV) $(SAM) validate --lint --template template.yaml
	cd infra && $(INFRA_ENV) $(CFN_LINT) --include-checks I --append-rules cfn_lint_serverless.rules -- template.yaml
	cd infra && $(INFRA_ENV) $(CHECKOV) --config-file .checkov.yaml
	cd infra && $(INFRA_ENV) $(CFN_LINT) --include-checks I -- $(OPS_TEMPLATES)
	cd infra && $(INFRA_ENV) $(CHECKOV) $(addprefix -f ,$(OPS_TEMPLATES)) --framework cloudformation --compact --quiet --skip-download

## infra-expand: the SAM transform of the template, offline (tools/sam_expand.py, with the pinned
## aws-sam-translator), with the test and prod parameter files, into target/infra-expand/; cfn-lint
## and checkov on what CloudFormation would deploy (tests/tests/expanded.rs tests it further)
INFRA_EXPANDED := target/infra-expand
infra-expand: infra-tools
	mkdir -p $(INFRA_EXPANDED)
	for env in test prod; do \
	  $(INFRA_ENV) $(INFRA_VENV)/sam/bin/python tools/sam_expand.py infra/template.yaml \
	    infra/params/$$env.json $(INFRA_EXPANDED)/$$env.json || exit 1; \
	done
	# W2001: the parameters only SAM reads (the digests, DeploymentType) are resolved by the
	# transform and so unused in its output.
	cd $(INFRA_EXPANDED) && $(INFRA_ENV) $(CFN_LINT) --include-checks I --ignore-checks W2001 -- test.json prod.json
	cd $(INFRA_EXPANDED) && $(INFRA_ENV) $(CHECKOV) -f test.json -f prod.json --framework cloudformation --compact --quiet --skip-download

## release-digests: each function's release digest (fanout-release, after make sam-build) written into
## the test and prod parameter files, so that every change of a function's code or configuration
## publishes a new version (docs/deploy.md)
release-digests:
	cargo run --quiet -p fanout-release -- digests infra/params/test.json infra/params/prod.json

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

# --- The pipeline: infra/pipeline.yaml, its buildspecs (infra/buildspec/) and the checks of a
# deployed stack; docs/deploy.md#the-pipeline. The buildspecs call only these targets.
PIPELINE_STACK ?= fanout-pipeline
AWS := $(CURDIR)/$(AWS_VENV)/bin/aws
# A CI image has no Rust; where rustup put it, make finds it after the shell that installed it.
export PATH := $(PATH):$(HOME)/.cargo/bin
.PHONY: ci-toolchain sam-package pipeline-deploy smoke-words smoke-copy check-live-config check-dlqs

## ci-toolchain: Rust (stable with rustfmt and clippy, and nightly for the fuzz targets) through rustup, when cargo is missing
ci-toolchain:
	command -v cargo >/dev/null || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
	rustup toolchain install nightly --profile minimal

## sam-package: upload what sam-build made and write infra/.aws-sam/packaged.yaml (PACKAGE_BUCKET, optional PACKAGE_KMS_KEY)
sam-package: infra-tools
	@test -n "$(PACKAGE_BUCKET)" || { echo "sam-package: give PACKAGE_BUCKET=<the artifact bucket>" >&2; exit 1; }
	cd infra && SAM_CLI_TELEMETRY=0 $(SAM) package --template-file .aws-sam/build/template.yaml \
	  --s3-bucket $(PACKAGE_BUCKET) --s3-prefix packages $(if $(PACKAGE_KMS_KEY),--kms-key-id $(PACKAGE_KMS_KEY)) \
	  --output-template-file .aws-sam/packaged.yaml

## pipeline-deploy: the first deploy of the pipeline's stack (PIPELINE_STACK, fanout-pipeline) with infra/params/pipeline.json; later it updates itself
pipeline-deploy: aws-cli
	$(AWS) cloudformation deploy --template-file infra/pipeline.yaml --stack-name $(PIPELINE_STACK) \
	  --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset --tags project=fanout --parameter-overrides \
	  $$($(PYTHON) -c 'import json, sys; print(" ".join(f"{k}={v}" for k, v in json.load(sys.stdin)["Parameters"].items()))' < infra/params/pipeline.json)

## smoke-words: fanout-smoke against the stack STACK: the word count, and the copy unless SMOKE_FLAGS=--skip-copy (SMOKE_BIN: a built fanout-smoke instead of cargo run)
smoke-words:
	@test -n "$(STACK)" || { echo "smoke-words: give STACK=<stack name>" >&2; exit 1; }
	$(if $(SMOKE_BIN),chmod +x $(SMOKE_BIN) && $(SMOKE_BIN),cargo run --quiet -p fanout-smoke --) --stack $(STACK) $(SMOKE_FLAGS)

## smoke-copy: a backup run of three seeded objects through the stack STACK's s3-fanout (alias live), polled until copied
smoke-copy: aws-cli
	AWS=$(AWS) bash tools/stack-checks.sh copy $(STACK)

## check-live-config: each function of the stack STACK serves, as its alias live, the configuration of its $LATEST
check-live-config: aws-cli
	AWS=$(AWS) bash tools/stack-checks.sh live-config $(STACK)

## check-dlqs: every dead-letter queue of the stack STACK is empty
check-dlqs: aws-cli
	AWS=$(AWS) bash tools/stack-checks.sh dlqs $(STACK)

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

## bench-scale: the scale simulation (10M × 1 MB, 1M × 100 MB, 1,000 × 1 TB at a maximum
## concurrency of 100, 1,000 and 10,000, enqueued by listing and from an inventory; the engine's
## planner and AIMD over a simulated queue, Lambda and S3 with per-prefix limits); a few minutes
## of CPU; bench/results/scale-sim.json and docs/scale.svg; docs/scale.md
.PHONY: bench-scale
bench-scale:
	cargo build --release -p fanout-bench --bin scale-sim
	target/release/scale-sim --json bench/results/scale-sim.json --chart docs/scale.svg $(SCALE_SIM_ARGS)


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
