#!/usr/bin/env python3
"""copy-bench: time server-side bulk copies by s3-copy, `aws s3 cp --recursive` and rclone.

Each data set gets a fresh moto server behind `latency-proxy` with the S3 copy model: a latency
per request, and for each copy request a fixed overhead plus its bytes at a per-stream bandwidth.
The source objects are written straight to moto (no latency); every tool then copies the same
source bucket through the proxy into a fresh destination bucket, which is checked (object count
and bytes) and deleted after the run. Tools take turns within each round, so that drift in the
machine's load falls on all of them alike.

Run by `make bench-copy`; `--help` lists the knobs. `--self-test` checks the model arithmetic.
Results go to a JSON file and, as Markdown, to standard output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

MIB = 1024 * 1024
KEY_ID, SECRET, REGION = "test", "test", "us-east-1"


# --- The model's limit (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    latency_ms: float
    overhead_ms: float
    bandwidth_mib_s: float

    def copy_request_ms(self, size: int) -> float:
        """One copy request (CopyObject or UploadPartCopy) of `size` bytes."""
        transfer = size / MIB / self.bandwidth_mib_s * 1000.0 if self.bandwidth_mib_s > 0 else 0.0
        return self.latency_ms + self.overhead_ms + transfer


def part_sizes(size: int, part_size: int) -> list[int]:
    """The ranges of a multipart copy of `size` bytes in parts of `part_size` (the last one shorter)."""
    full, rest = divmod(size, part_size)
    return [part_size] * full + ([rest] if rest else [])


S3_MIN_PART = 5 * MIB
AUTO = -1  # s3-copy's automatic part size (fanout_copy_core::plan::PartSize::Auto)
AUTO_MAX_PART = 16 * MIB  # fanout_copy_core::plan::AUTO_MAX_PART_SIZE


def limit_ms(model: Model, size: int) -> float:
    """The model's limit for copying one object of `size` bytes: every part in flight at once,
    in parts of 5 MiB, the smallest S3 allows, so that no tool can do better: CreateMultipartUpload,
    the longest part, then CompleteMultipartUpload, each one round trip. An object of 5 MiB or
    less is one CopyObject."""
    if size <= S3_MIN_PART:
        return model.copy_request_ms(size)
    return 2 * model.latency_ms + model.copy_request_ms(S3_MIN_PART)


def auto_part_size(size: int, free_slots: int) -> int:
    """fanout_copy_core::plan::part_size_for with PartSize::Auto: as many parts as free slots, in
    whole MiB, 5 to 16 MiB each."""
    per_slot = -(-size // max(free_slots, 1))
    whole_mib = -(-per_slot // MIB) * MIB
    return min(max(whole_mib, S3_MIN_PART), AUTO_MAX_PART)


@dataclass(frozen=True)
class Defaults:
    """What a tool does at its defaults, as far as the model is concerned."""

    threshold: int  # multipart above this size, else one CopyObject
    part_size: int  # or AUTO
    concurrency: int  # requests in flight at once, across objects
    requests_per_object: int  # other round trips per object (HEAD, tagging, create, complete)
    setup_round_trips: int  # sequential round trips before the first copy (listings)


# s3-copy: fanout_copy_core::plan defaults. aws s3 cp (AWS CLI v1, s3transfer): 10 requests in
# flight, 8 MiB threshold and parts, HeadObject + create + complete per multipart object.
# rclone: 4 transfers, CopyObject below its 4.6 GiB copy cutoff, a HEAD after each copy.
TOOL_DEFAULTS = {
    "s3-copy": Defaults(16 * MIB, AUTO, 256, 3, 1),
    "aws s3 cp": Defaults(8 * MIB, 8 * MIB, 10, 3, 1),
    "rclone": Defaults(int(4.6 * 1024 * MIB), 0, 4, 1, 2),
}


def estimate_ms(model: Model, sizes: list[int], tool: Defaults) -> float:
    """The model's time for a tool's schedule, with the emulator taking no time: the request
    time spread over the tool's concurrency, but never less than its longest object. Objects are
    planned in listing order, all at the start (the automatic part size sees the slots that the
    objects before have planned as taken)."""
    work = 0.0
    longest = 0.0
    planned = 0
    for size in sizes:
        if size <= tool.threshold:
            requests = [model.copy_request_ms(size)]
        else:
            part = tool.part_size
            if part == AUTO:
                part = auto_part_size(size, tool.concurrency - planned)
            requests = [model.copy_request_ms(p) for p in part_sizes(size, part)]
        planned += len(requests)
        other = tool.requests_per_object * model.latency_ms
        work += sum(requests) + other
        longest = max(longest, max(requests) + other)
    return tool.setup_round_trips * model.latency_ms + max(work / tool.concurrency, longest)


def self_test() -> None:
    model = Model(latency_ms=5, overhead_ms=35, bandwidth_mib_s=75)
    assert part_sizes(40 * MIB, 16 * MIB) == [16 * MIB, 16 * MIB, 8 * MIB]
    assert part_sizes(32 * MIB, 16 * MIB) == [16 * MIB, 16 * MIB]
    assert part_sizes(0, 16 * MIB) == []
    assert math.isclose(model.copy_request_ms(75 * MIB), 1040.0)
    # Any object above 5 MiB: 5 + (5 + 35 + 66.67) + 5
    assert math.isclose(limit_ms(model, 256 * MIB), 50.0 + 1000 * 5 / 75)
    assert math.isclose(limit_ms(model, 32 * MIB), 50.0 + 1000 * 5 / 75)
    # At most 5 MiB: one CopyObject of the whole object.
    assert math.isclose(limit_ms(model, 4 * MIB), 40.0 + 1000 * 4 / 75)
    # The automatic part size, as fanout_copy_core::plan tests it.
    assert auto_part_size(256 * MIB, 256) == 5 * MIB
    assert auto_part_size(256 * MIB, 20) == 13 * MIB
    assert auto_part_size(256 * MIB, 8) == 16 * MIB
    assert auto_part_size(256 * MIB, 0) == 16 * MIB
    # Two objects of 32 MiB, 16 MiB parts, 64 in flight: the longest object bounds it.
    one = Defaults(16 * MIB, 16 * MIB, 64, 2, 1)
    part = model.copy_request_ms(16 * MIB)
    assert math.isclose(estimate_ms(model, [32 * MIB] * 2, one), 5 + part + 10)
    # One request at a time: all the work in a row.
    serial = Defaults(16 * MIB, 16 * MIB, 1, 2, 1)
    assert math.isclose(estimate_ms(model, [32 * MIB] * 2, serial), 5 + 2 * (2 * part + 10))
    # Automatic parts, 8 slots, two 32 MiB objects: the first takes 7 slots in 5 MiB parts
    # (6 × 5 + 2), the second sees one slot free and goes in 16 MiB parts, whose one part is
    # longer than the work spread over the slots.
    auto = Defaults(16 * MIB, AUTO, 8, 0, 0)
    first = 6 * model.copy_request_ms(5 * MIB) + model.copy_request_ms(2 * MIB)
    assert (first + 2 * part) / 8 < part
    assert math.isclose(estimate_ms(model, [32 * MIB] * 2, auto), part)
    assert math.isclose(estimate_ms(model, [32 * MIB], auto), model.copy_request_ms(5 * MIB))
    print("self-test ok")


# --- Processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"copy-bench: {url} did not answer within {timeout:.0f} s")
            time.sleep(0.2)


@dataclass
class Stack:
    """moto server and the latency proxy in front of it."""

    moto_url: str
    proxy_url: str
    floor_url: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def start(cls, args: argparse.Namespace, log_dir: str, name: str) -> "Stack":
        port = free_port()
        moto_log = open(os.path.join(log_dir, f"moto-{name}.log"), "wb")
        launcher = [args.moto_server] if args.stock_moto else [args.moto_python, args.moto_launcher]
        moto = subprocess.Popen(
            launcher + ["-H", "127.0.0.1", "-p", str(port)],
            # Objects in memory, not in temporary files: less of the emulator's own cost.
            env=dict(os.environ, MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=str(512 * MIB)),
            stdout=moto_log,
            stderr=subprocess.STDOUT,
        )
        moto_url = f"http://127.0.0.1:{port}"
        wait_for_http(moto_url + "/moto-api/")
        procs = [moto]
        urls = []
        k = args.time_scale
        for label, model in (
            ("model", ["--overlap", "--latency-ms", str(args.latency_ms * k),
                       "--copy-overhead-ms", str(args.copy_overhead_ms * k)]
             + (["--copy-bandwidth-mib-s", str(args.copy_bandwidth_mib_s / k)] if args.copy_bandwidth_mib_s > 0 else [])),
            ("floor", ["--latency-ms", "0"]),
        ):
            proxy = subprocess.Popen(
                [args.proxy_bin, "--upstream", moto_url] + model,
                stdout=subprocess.PIPE,
                stderr=open(os.path.join(log_dir, f"proxy-{name}-{label}.log"), "wb"),
            )
            procs.insert(0, proxy)
            url = proxy.stdout.readline().decode().strip()
            if not url.startswith("http://"):
                for proc in procs:
                    proc.terminate()
                raise SystemExit("copy-bench: latency-proxy did not print its URL")
            urls.append(url)
        return cls(moto_url, urls[0], urls[1], procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def proxy_stats(self, url: str) -> dict:
        with urllib.request.urlopen(url + "/__latency-proxy/stats", timeout=10) as r:
            return json.load(r)


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    )


# --- Data sets ---------------------------------------------------------------------------------


def object_sizes(data_set: str, seed: int) -> list[int]:
    if data_set == "a":
        rng = random.Random(seed)
        return [rng.randint(24 * MIB, 32 * MIB) for _ in range(40)]
    if data_set == "b":
        return [256 * MIB]
    raise ValueError(data_set)


def fill_source(client, bucket: str, sizes: list[int]) -> None:
    """Writes the objects straight to moto. Contents are random per object but cheap to make:
    a random 1 MiB block repeated, behind a unique prefix."""
    client.create_bucket(Bucket=bucket)
    block = os.urandom(MIB)
    for i, size in enumerate(sizes):
        body = (f"object {i:04d} ".encode() + block * (size // MIB + 1))[:size]
        # public-read: the proxy learns a whole-object copy's size with an unsigned HEAD, which
        # moto refuses (403) on a private object. No tool is told about it or copies ACLs.
        client.put_object(Bucket=bucket, Key=f"data/{i:04d}.bin", Body=body, ACL="public-read")
        del body


def bucket_totals(client, bucket: str) -> tuple[int, int]:
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            count += 1
            total += obj["Size"]
    return count, total


def drop_bucket(client, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


# --- Tools -------------------------------------------------------------------------------------

TOOLS = ("s3-copy", "aws s3 cp", "rclone")


def tool_command(tool: str, args, endpoint: str, src: str, dst: str, scratch: str):
    env = dict(os.environ)
    for var in list(env):
        if var.startswith(("AWS_", "RCLONE_")):
            del env[var]
    env.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    if tool == "s3-copy":
        env["AWS_ENDPOINT_URL"] = endpoint
        return [args.s3_copy_bin, f"s3://{src}", f"s3://{dst}", "--json"], env
    if tool == "aws s3 cp":
        # Path-style addressing is the only setting made: the emulator has no bucket host names.
        config = os.path.join(scratch, "aws-config")
        with open(config, "w") as f:
            f.write("[default]\ns3 =\n    addressing_style = path\n")
        env["AWS_CONFIG_FILE"] = config
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(scratch, "no-credentials")
        return [
            args.aws_bin, "s3", "cp", "--recursive", f"s3://{src}", f"s3://{dst}",
            "--endpoint-url", endpoint, "--only-show-errors",
        ], env
    if tool == "rclone":
        env.update(
            RCLONE_CONFIG=os.path.join(scratch, "no-rclone.conf"),
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEY_ID,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET,
            RCLONE_CONFIG_BENCH_REGION=REGION,
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )
        return [args.rclone_bin, "copy", f"bench:{src}", f"bench:{dst}"], env
    raise ValueError(tool)


def run_tool(tool, args, stack, endpoint, direct, src, dst, expected, scratch) -> dict:
    direct.create_bucket(Bucket=dst)
    cmd, env = tool_command(tool, args, endpoint, src, dst, scratch)
    before = stack.proxy_stats(endpoint)
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=args.timeout)
    seconds = time.monotonic() - start
    after = stack.proxy_stats(endpoint)
    got = bucket_totals(direct, dst)
    drop_bucket(direct, dst)
    if done.returncode != 0 or got != expected:
        sys.stderr.write(done.stdout.decode(errors="replace")[-2000:])
        sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
        raise SystemExit(
            f"copy-bench: {tool} exited {done.returncode}; destination holds {got[0]} objects "
            f"/ {got[1]} bytes, expected {expected[0]} / {expected[1]}"
        )
    requests = {k: after[k] - before[k] for k in after if isinstance(after.get(k), (int, float)) and k in before}
    if endpoint == stack.proxy_url and args.copy_bandwidth_mib_s > 0 and requests.get("copied_bytes") != expected[1]:
        print(f"copy-bench: warning: the copy model saw {requests.get('copied_bytes')} bytes of "
              f"{tool}'s copies, not {expected[1]}", file=sys.stderr)
    return {"seconds": seconds, "proxy": requests}


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-sets", default="a,b", help="comma-separated: a (40 × 24–32 MiB), b (1 × 256 MiB)")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--runs", type=int, default=3, help="timed runs per tool per data set")
    p.add_argument("--floor-runs", type=int, default=1,
                   help="runs per tool per data set through a second proxy that adds nothing: the emulator's own time")
    p.add_argument("--latency-ms", type=float, default=5.0)
    p.add_argument("--copy-overhead-ms", type=float, default=35.0)
    p.add_argument("--copy-bandwidth-mib-s", type=float, default=75.0)
    p.add_argument("--seed", type=int, default=7, help="seeds the object sizes of data set a")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per tool run")
    p.add_argument("--time-scale", type=float, default=60.0,
                   help="run the model this many times slower and divide the times by it, so that the "
                        "emulator's own work fits inside the modelled time (see docs/performance.md)")
    p.add_argument("--moto-python", default=os.path.join(root, ".venv/bin/python"))
    p.add_argument("--moto-launcher", default=os.path.join(here, "moto_ranged.py"),
                   help="moto server with UploadPartCopy reading only its range (see that file)")
    p.add_argument("--stock-moto", action="store_true",
                   help="run moto_server as installed instead (its part copies read the whole source)")
    p.add_argument("--moto-server", default=os.path.join(root, ".venv/bin/moto_server"))
    p.add_argument("--proxy-bin", default=os.path.join(root, "target/release/latency-proxy"))
    p.add_argument("--s3-copy-bin", default=os.path.join(root, "target/release/s3-copy"))
    p.add_argument("--aws-bin", default=os.path.join(root, ".venv-aws/bin/aws"))
    p.add_argument("--rclone-bin", default=shutil.which("rclone") or "rclone")
    p.add_argument("--results", default=os.path.join(root, "target/copy-bench.json"))
    p.add_argument("--self-test", action="store_true", help="check the model arithmetic and exit")
    args = p.parse_args()
    if args.self_test:
        self_test()
        return

    model = Model(args.latency_ms, args.copy_overhead_ms, args.copy_bandwidth_mib_s)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    results = {
        "model": vars(model),
        "time_scale": args.time_scale,
        "runs": args.runs,
        "versions": versions(args),
        "data_sets": {},
    }
    scratch = tempfile.mkdtemp(prefix="copy-bench-")
    for data_set in [d.strip() for d in args.data_sets.split(",") if d.strip()]:
        sizes = object_sizes(data_set, args.seed)
        stack = Stack.start(args, scratch, data_set)
        try:
            direct = s3_client(stack.moto_url)
            t0 = time.monotonic()
            fill_source(direct, "src", sizes)
            print(f"data set {data_set}: {len(sizes)} objects, {sum(sizes) / MIB:.1f} MiB written "
                  f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            expected = (len(sizes), sum(sizes))
            limit = limit_ms(model, max(sizes))
            entry = {"objects": len(sizes), "bytes": sum(sizes), "largest": max(sizes),
                     "limit_s": limit / 1000.0, "tools": {t: [] for t in tools},
                     "floor": {t: [] for t in tools},
                     "estimate_s": {t: estimate_ms(model, sizes, TOOL_DEFAULTS[t]) / 1000.0
                                    for t in tools if t in TOOL_DEFAULTS}}
            rounds = [("tools", stack.proxy_url, run) for run in range(args.runs)]
            rounds += [("floor", stack.floor_url, run) for run in range(args.floor_runs)]
            for kind, endpoint, run in rounds:
                for tool in tools:
                    dst = f"dst-{kind}-{tool.replace(' ', '').replace('3', '')}-{run}".lower()
                    r = run_tool(tool, args, stack, endpoint, direct, "src", dst, expected, scratch)
                    if kind == "tools":  # back to the model's time
                        r["wall_seconds"] = r["seconds"]
                        r["seconds"] = r["seconds"] / args.time_scale
                    entry[kind][tool].append(r)
                    label = "model" if kind == "tools" else "emulator floor"
                    print(f"  {data_set} {label} run {run + 1}: {tool}: {r['seconds']:.2f} s {r['proxy']}",
                          file=sys.stderr)
            results["data_sets"][data_set] = entry
        finally:
            stack.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    print(markdown(results))
    print(f"results: {args.results}", file=sys.stderr)


def versions(args) -> dict:
    def out(cmd):
        try:
            lines = subprocess.run(cmd, capture_output=True, timeout=60).stdout.decode().splitlines()
            return lines[0].strip() if lines else "unknown"
        except OSError as e:  # a missing tool shows here, and fails its runs
            return f"unavailable: {e}"

    return {
        "stock_moto": args.stock_moto,
        "aws": out([args.aws_bin, "--version"]),
        "rclone": out([args.rclone_bin, "version"]),
        "moto": out([args.moto_python, "-c", "import moto; print('moto', moto.__version__)"]),
    }


def markdown(results: dict) -> str:
    lines = [
        "| Data set | Tool | median (model) | runs (s) | × vs aws s3 cp | × model limit "
        "| emulator floor | model estimate | estimate × vs aws | estimate × limit |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    bars = []
    for name, entry in results["data_sets"].items():
        medians = {t: statistics.median(r["seconds"] for r in rs) for t, rs in entry["tools"].items() if rs}
        floors = {t: statistics.median(r["seconds"] for r in rs) for t, rs in entry["floor"].items() if rs}
        estimates = entry.get("estimate_s", {})
        aws, aws_est = medians.get("aws s3 cp"), estimates.get("aws s3 cp")
        limit = entry["limit_s"]
        for tool, median in medians.items():
            runs = ", ".join(f"{r['seconds']:.2f}" for r in entry["tools"][tool])
            est = estimates.get(tool)
            lines.append(
                f"| ({name}) | {tool} | {median:.2f} s | {runs} | "
                f"{(aws / median) if aws else float('nan'):.2f}× | {median / limit:.1f}× | "
                f"{floors.get(tool, float('nan')):.2f} s | {est if est else float('nan'):.2f} s | "
                f"{(aws_est / est) if est and aws_est else float('nan'):.1f}× | "
                f"{(est / limit) if est else float('nan'):.1f}× |"
            )
        lines.append(f"| ({name}) | model limit | {limit:.2f} s | | | 1× | | | | |")
        scale = max(list(medians.values()) + [limit])
        bars.append(f"({name}) measured through the model (median, s)")
        for tool, median in list(medians.items()) + [("model limit", limit)]:
            bars.append(f"  {tool:<12} {'#' * max(1, round(50 * median / scale)):<50} {median:6.2f}")
    return "\n".join(lines) + "\n\n```text\n" + "\n".join(bars) + "\n```"


if __name__ == "__main__":
    main()
