#!/usr/bin/env bash
# Runs one fuzz target for a number of seconds: its corpus in fuzz/corpus/<target> (kept between
# runs, not in git), seeded from events/ and the tests' fixtures; a crash is saved by libFuzzer in
# fuzz/artifacts/<target>/ and fails the run. Usage: tools/fuzz.sh TARGET SECONDS [libFuzzer args]
set -euo pipefail
target=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$root/fuzz/corpus/$target
mkdir -p "$corpus"
# Seeds: the sample events for the JSON and request targets; a few texts for the others.
case $target in
  slack_request)
    dict=$root/fuzz/dicts/slack.dict
    for f in "$root"/events/slack-counter-*.json; do
      # The request body, with a content-type selector byte in front (0: form, 2: JSON).
      python3 - "$f" "$corpus" <<'PY'
import json, sys, os, base64, hashlib
event = json.load(open(sys.argv[1]))
body = event.get("body") or ""
if event.get("isBase64Encoded"):
    body = base64.b64decode(body).decode("utf-8", "replace")
selector = b"\x02" if body.lstrip().startswith("{") else b"\x00"
data = selector + body.encode()
open(os.path.join(sys.argv[2], "seed-" + hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
    done ;;
  tokenize)
    dict=$root/fuzz/dicts/slack.dict
    printf '%s' 'awsadvent some words <@U1> <#C1|general> <https://example.com|a link> &amp; :tada: :+1::skin-tone-2: 日本語のテキスト' > "$corpus/seed-markup" ;;
  location_and_size)
    dict=$root/fuzz/dicts/json.dict
    for s in 's3://bucket/prefix/' 's3://bucket' '16MiB' '1 GiB' 'auto' '5242880'; do
      printf '%s' "$s" > "$corpus/seed-$(printf '%s' "$s" | sha1sum | cut -c1-12)"
    done ;;
  part_layout)
    dict= ;;
  *)
    dict=$root/fuzz/dicts/json.dict
    for f in "$root"/events/*.json; do
      cp "$f" "$corpus/seed-$(basename "$f")"
      # The messages inside the events, too (a words message, a copy job).
      python3 - "$f" "$corpus" <<'PY'
import json, sys, os, hashlib
def bodies(event):
    for record in event.get("Records", []):
        body = record.get("body") or record.get("Sns", {}).get("Message")
        if body:
            yield body
            try:
                inner = json.loads(body).get("Message")
                if inner:
                    yield inner
            except Exception:
                pass
for body in bodies(json.load(open(sys.argv[1]))):
    data = body.encode()
    open(os.path.join(sys.argv[2], "seed-" + hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
    done ;;
esac
cd "$root/fuzz"
export PATH="$root/.tools/bin:$PATH"
args=(-max_total_time="$seconds" -print_final_stats=1)
if [ -n "${dict:-}" ]; then args+=(-dict="$dict"); fi
cargo +nightly fuzz run "$target" "$corpus" -- "${args[@]}" "$@"
