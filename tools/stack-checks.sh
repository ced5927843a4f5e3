#!/usr/bin/env bash
# Checks of a deployed fanout stack, with the AWS CLI, for the pipeline's integration tests
# (make smoke-copy, check-live-config, check-dlqs; docs/deploy.md#the-pipeline):
#   tools/stack-checks.sh copy STACK          a backup run of three seeded objects, copied
#   tools/stack-checks.sh live-config STACK   each function's alias `live` is its $LATEST
#   tools/stack-checks.sh dlqs STACK          every dead-letter queue is empty
# $AWS is the aws command (make passes the one in .venv-aws). Exits 1 with what failed.
set -euo pipefail

AWS=${AWS:-aws}
check=${1:?usage: $0 copy|live-config|dlqs STACK}
stack=${2:?usage: $0 copy|live-config|dlqs STACK}

fail() { echo "$check: $*" >&2; exit 1; }

output() {
    "$AWS" cloudformation describe-stacks --stack-name "$stack" --output text \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
}

parameter() {
    "$AWS" cloudformation describe-stacks --stack-name "$stack" --output text \
        --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue"
}

# The stack's resources of one type: "logical id<TAB>physical id" lines.
resources() {
    "$AWS" cloudformation list-stack-resources --stack-name "$stack" --output text \
        --query "StackResourceSummaries[?ResourceType=='$1'].[LogicalResourceId, PhysicalResourceId]"
}

copy_run() {
    local fanout runs source destination run prefix timeout_s=300
    fanout=$(output S3FanoutFunctionName)
    runs=$(output RunsTableName)
    source=$(parameter SourceBucket)
    destination=$(parameter DestinationBucket)
    run="fanout-smoke-$(date -u +%Y%m%dT%H%M%SZ)-$$"
    prefix="fanout-smoke/$run/"
    # Expanded now: the function's locals are gone when the script exits.
    trap "cleanup '$source' '$destination' '$prefix' '$run'" EXIT

    for i in 1 2 3; do
        printf 'fanout copy smoke test %s, object %s\n' "$run" "$i" |
            "$AWS" s3 cp --quiet - "s3://$source/${prefix}object-$i.txt"
    done
    local payload answer
    payload=$(printf '{"source": "s3://%s/%s", "destination": "s3://%s/%s", "run_id": "%s"}' \
        "$source" "$prefix" "$destination" "$prefix" "$run")
    answer=$(mktemp)
    local function_error
    function_error=$("$AWS" lambda invoke --function-name "$fanout:live" --payload "$payload" \
        --query FunctionError --output text "$answer")
    [ "$function_error" = "None" ] || fail "$fanout:live failed: $(cat "$answer")"
    echo "copy: run $run started by $fanout:live"

    local deadline=$((SECONDS + timeout_s)) completed=None
    while [ "$SECONDS" -lt "$deadline" ]; do
        completed=$("$AWS" dynamodb get-item --table-name "$runs" --consistent-read \
            --key "{\"run_id\": {\"S\": \"$run\"}}" --query 'Item.completed_at.S' --output text)
        [ "$completed" != "None" ] && break
        sleep 5
    done
    [ "$completed" != "None" ] || fail "run $run not complete after ${timeout_s}s: see docs/runs.md (the run item in $runs, the copy queue, the DLQs)"

    for i in 1 2 3; do
        local key="${prefix}object-$i.txt" outcome copied
        outcome=$("$AWS" dynamodb get-item --table-name "$runs" --consistent-read \
            --key "{\"run_id\": {\"S\": \"object#$run#$key\"}}" --query 'Item.outcome.S' --output text)
        [ "$outcome" = "copied" ] || fail "$key: outcome $outcome, expected copied"
        copied=$("$AWS" s3 cp --quiet "s3://$destination/$key" -)
        [ "$copied" = "fanout copy smoke test $run, object $i" ] || fail "s3://$destination/$key does not hold the source's bytes"
    done
    echo "copy: run $run complete at $completed, 3 objects copied and read back"
}

cleanup() {
    "$AWS" s3 rm --quiet --recursive "s3://$1/$3" || true
    "$AWS" s3 rm --quiet --recursive "s3://$2/$3" || true
    "$AWS" s3 rm --quiet --recursive "s3://$2/fanout-reports/$4/" || true
}

# The fields that make a function what it is; Version, ARNs, dates and states differ by nature.
CONFIGURATION='{code: CodeSha256, runtime: Runtime, handler: Handler, architectures: Architectures, memory: MemorySize, timeout: Timeout, role: Role, environment: Environment, tracing: TracingConfig, logging: LoggingConfig, layers: Layers, storage: EphemeralStorage, dead_letter: DeadLetterConfig}'

live_config() {
    local functions=0 differ=0 id name live latest
    # The list on descriptor 3, so that no command in the loop reads it.
    while read -r id name <&3; do
        [ -n "$name" ] || continue
        functions=$((functions + 1))
        live=$("$AWS" lambda get-function-configuration --function-name "$name" --qualifier live \
            --query "$CONFIGURATION" --output json) || fail "$id ($name) has no alias live"
        latest=$("$AWS" lambda get-function-configuration --function-name "$name" --qualifier '$LATEST' \
            --query "$CONFIGURATION" --output json)
        if [ "$live" = "$latest" ]; then
            echo "live-config: $id: live is \$LATEST"
        else
            echo "live-config: $id ($name): live differs from \$LATEST:" >&2
            diff <(echo "$live") <(echo "$latest") >&2 || true
            differ=$((differ + 1))
        fi
    done 3< <(resources AWS::Lambda::Function)
    [ "$functions" -gt 0 ] || fail "$stack has no functions"
    [ "$differ" -eq 0 ] || fail "$differ of $functions functions serve another configuration than \$LATEST: a deployment did not finish or was rolled back"
}

dlqs() {
    local queues=0 full=0 id url counts
    while read -r id url <&3; do
        case "$id" in *DLQ) ;; *) continue ;; esac
        queues=$((queues + 1))
        counts=$("$AWS" sqs get-queue-attributes --queue-url "$url" --output text \
            --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible ApproximateNumberOfMessagesDelayed \
            --query 'Attributes.[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible, ApproximateNumberOfMessagesDelayed]')
        if [ "$(echo "$counts" | tr -s '[:space:]' ' ' | sed 's/ $//')" = "0 0 0" ]; then
            echo "dlqs: $id is empty"
        else
            echo "dlqs: $id holds messages (visible, in flight, delayed: $counts): $url" >&2
            full=$((full + 1))
        fi
    done 3< <(resources AWS::SQS::Queue)
    [ "$queues" -gt 0 ] || fail "$stack has no dead-letter queues (queues named *DLQ)"
    [ "$full" -eq 0 ] || fail "$full dead-letter queues hold messages: read them as docs/runs.md shows"
}

case "$check" in
    copy) copy_run ;;
    live-config) live_config ;;
    dlqs) dlqs ;;
    *) fail "unknown check (copy, live-config or dlqs)" ;;
esac
