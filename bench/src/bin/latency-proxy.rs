//! latency-proxy: an HTTP/1.1 reverse proxy that adds a fixed latency to every request, so that
//! an AWS emulator on the same machine answers with the round-trip time of a real network.
//!
//! Prints the URL it listens on as the first line of standard output; the counters are at
//! `GET <url>/__latency-proxy/stats`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fanout_bench::copy_model::CopyModel;
use fanout_bench::faults::FaultPlan;
use fanout_bench::proxy::{Proxy, ProxyConfig, STATS_PATH};
use http::Uri;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The upstream to forward to, e.g. http://127.0.0.1:5000 (the emulator).
    #[arg(long)]
    upstream: Uri,
    /// Where to listen; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Added to every request before it is forwarded, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    latency_ms: f64,
    /// Copy model: added to every request that carries `x-amz-copy-source`, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    copy_overhead_ms: f64,
    /// Copy model: the speed of one copy request, in MiB/s; each copy request is delayed
    /// further by its bytes (its `x-amz-copy-source-range`, else the source object's size,
    /// learnt once with a HEAD upstream) at this speed. Unlimited when absent.
    #[arg(long)]
    copy_bandwidth_mib_s: Option<f64>,
    /// Forward every request at once and answer it when its delay has passed since it
    /// arrived (or when the upstream answers, if later): the upstream's own time then counts
    /// inside the modelled time instead of being added to it.
    #[arg(long)]
    overlap: bool,
    /// Faults to inject, each a share of requests: e.g.
    /// `throttle=0.1,500=0.02,reset=0.02,hang=0.01,hang-seconds=15,seed=1` (see
    /// docs/reliability.md). None by default.
    #[arg(long, default_value = "")]
    faults: FaultPlan,
}

fn millis(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value / 1000.0)
        .map_err(|_| format!("{flag} must be a number of milliseconds ≥ 0, not {value}"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if args.upstream.scheme_str() != Some("http") || args.upstream.authority().is_none() {
        return Err(format!(
            "--upstream must be an http://host:port URL, not {}",
            args.upstream
        ));
    }
    if args
        .copy_bandwidth_mib_s
        .is_some_and(|b| b.is_nan() || b <= 0.0)
    {
        return Err("--copy-bandwidth-mib-s must be more than 0".into());
    }
    let proxy = Proxy::start(ProxyConfig {
        listen: args.listen,
        upstream: args.upstream.clone(),
        latency: millis(args.latency_ms, "--latency-ms")?,
        copy: CopyModel {
            overhead: millis(args.copy_overhead_ms, "--copy-overhead-ms")?,
            bandwidth_mib_s: args.copy_bandwidth_mib_s,
        },
        overlap: args.overlap,
        record: false,
        faults: args.faults.clone(),
    })
    .await
    .map_err(|e| format!("could not listen on {}: {e}", args.listen))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", proxy.url()).map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    drop(stdout);
    eprintln!(
        "latency-proxy: {} -> {} with {} ms per request; counters at {}{STATS_PATH}",
        proxy.url(),
        args.upstream,
        args.latency_ms,
        proxy.url()
    );
    std::future::pending::<()>().await;
    Ok(())
}
