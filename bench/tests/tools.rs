//! The benchmark tools against small local servers: the latency proxy passes answers through
//! unchanged and counts every request; the copy model sizes copies from their range or a HEAD.
//! No timing is asserted.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fanout_bench::copy_model::CopyModel;
use fanout_bench::proxy::{Proxy, ProxyConfig, STATS_PATH};
use fanout_tests::serve::serve_http1;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// What the fake upstream saw: `METHOD path` per request.
type Seen = Arc<Mutex<Vec<String>>>;

/// An upstream that answers every request with 201, a header of its own and a body describing
/// the request; a HEAD reports a 3000-byte object; `/close` closes the connection, as moto does.
async fn upstream() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    tokio::spawn(serve_http1(listener, seen.clone(), upstream_answer, || {}));
    (addr, seen)
}

async fn upstream_answer(log: Seen, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let line = format!("{} {}", request.method(), request.uri());
    log.lock().unwrap().push(line.clone());
    let is_head = request.method() == Method::HEAD;
    let close = request.uri().path() == "/close";
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let answer = if is_head {
        Bytes::from(vec![0u8; 3000])
    } else {
        Bytes::from(format!("{line} with {} bytes: {body:?}", body.len()))
    };
    let mut response = Response::builder()
        .status(StatusCode::CREATED)
        .header("x-upstream", "fake")
        .header("content-type", "text/plain");
    if close {
        response = response.header("connection", "close");
    }
    response.body(Full::new(answer)).unwrap()
}

async fn proxy_to(upstream: SocketAddr, copy: CopyModel) -> Proxy {
    Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: format!("http://{upstream}").parse().unwrap(),
        latency: Duration::from_millis(1),
        copy,
        overlap: false,
        record: true,
        faults: Default::default(),
    })
    .await
    .unwrap()
}

/// Status, the headers that do not vary between answers, and body.
async fn send(request: Request<Full<Bytes>>) -> (StatusCode, Vec<(String, String)>, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn post(base: &str, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(format!("{base}{path}"))
        .header("x-amz-target", "DynamoDB_20120810.UpdateItem")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn every_request_is_delayed_counted_and_answered_unchanged() {
    let (upstream_addr, seen) = upstream().await;
    let proxy = proxy_to(upstream_addr, CopyModel::default()).await;
    let direct = send(post(
        &format!("http://{upstream_addr}"),
        "/table?x=1",
        "{\"a\":1}",
    ))
    .await;
    for _ in 0..5 {
        let proxied = send(post(&proxy.url(), "/table?x=1", "{\"a\":1}")).await;
        assert_eq!(proxied, direct);
    }
    assert_eq!(direct.0, StatusCode::CREATED);
    assert_eq!(
        direct.2,
        Bytes::from_static(b"POST /table?x=1 with 7 bytes: b\"{\\\"a\\\":1}\"")
    );
    assert_eq!(proxy.stats().requests, 5);
    assert_eq!(proxy.stats().connections, 5, "each send is a new client");
    assert_eq!(seen.lock().unwrap().len(), 6, "one direct and five proxied");
    let log = proxy.take_log();
    assert_eq!(log.len(), 5);
    for exchange in &log {
        assert_eq!(exchange.operation, "UpdateItem");
        assert_eq!(exchange.status, 201);
        assert!(exchange.received <= exchange.forwarded && exchange.forwarded <= exchange.answered);
    }
    assert!(proxy.take_log().is_empty(), "taking the log empties it");
}

#[tokio::test]
async fn overlap_forwards_at_once_and_holds_the_answer_until_the_delay_has_passed() {
    let (upstream_addr, _) = upstream().await;
    let latency = Duration::from_millis(300);
    for overlap in [false, true] {
        let proxy = Proxy::start(ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: format!("http://{upstream_addr}").parse().unwrap(),
            latency,
            copy: CopyModel::default(),
            overlap,
            record: true,
            faults: Default::default(),
        })
        .await
        .unwrap();
        let (status, _, _) = send(post(&proxy.url(), "/t", "{}")).await;
        assert_eq!(status, StatusCode::CREATED);
        let log = proxy.take_log();
        let exchange = &log[0];
        // Never answered before the delay has passed, either way.
        assert!(exchange.answered - exchange.received >= latency);
        if overlap {
            // The instant upstream answered long before the delay was up.
            assert!(
                exchange.forwarded - exchange.received < latency,
                "forwarded after {:?}",
                exchange.forwarded - exchange.received
            );
        } else {
            assert!(exchange.forwarded - exchange.received >= latency);
        }
    }
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let (upstream_addr, _) = upstream().await;
    let proxy = proxy_to(upstream_addr, CopyModel::default()).await;
    let (status, mut direct_headers, direct_body) =
        send(post(&format!("http://{upstream_addr}"), "/close", "")).await;
    assert!(direct_headers.contains(&("connection".into(), "close".into())));
    let (proxied_status, proxied_headers, proxied_body) =
        send(post(&proxy.url(), "/close", "")).await;
    direct_headers.retain(|(name, _)| name != "connection");
    assert_eq!(
        (proxied_status, proxied_headers, proxied_body),
        (status, direct_headers, direct_body)
    );
    assert_eq!(proxy.stats().requests, 1);
}

#[tokio::test]
async fn the_stats_path_answers_the_counters_without_forwarding() {
    let (upstream_addr, seen) = upstream().await;
    let proxy = proxy_to(upstream_addr, CopyModel::default()).await;
    send(post(&proxy.url(), "/", "")).await;
    let (status, _, body) = send(
        Request::get(format!("{}{STATS_PATH}", proxy.url()))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["copy_requests"], 0);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn copies_are_sized_by_their_range_else_by_one_head_of_the_source() {
    let (upstream_addr, seen) = upstream().await;
    let copy = CopyModel {
        overhead: Duration::from_millis(1),
        bandwidth_mib_s: Some(1000.0),
    };
    let proxy = proxy_to(upstream_addr, copy).await;
    let copy_request = |range: Option<&str>| {
        let mut request = Request::put(format!("{}/bucket/target.bin", proxy.url()))
            .header("x-amz-copy-source", "bucket/source.bin");
        if let Some(range) = range {
            request = request.header("x-amz-copy-source-range", range);
        }
        request.body(Full::default()).unwrap()
    };
    for range in [None, None, Some("bytes=0-99")] {
        let (status, _, _) = send(copy_request(range)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let stats = proxy.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.copy_requests, 3);
    assert_eq!(stats.copied_bytes, 3000 + 3000 + 100);
    assert_eq!(stats.size_lookups, 1, "the source size is cached");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "HEAD /bucket/source.bin",
            "PUT /bucket/target.bin",
            "PUT /bucket/target.bin",
            "PUT /bucket/target.bin"
        ]
    );
}

#[tokio::test]
async fn without_a_copy_model_copies_are_counted_but_not_sized() {
    let (upstream_addr, seen) = upstream().await;
    let proxy = proxy_to(upstream_addr, CopyModel::default()).await;
    let request = Request::put(format!("{}/bucket/target.bin", proxy.url()))
        .header("x-amz-copy-source", "bucket/source.bin")
        .body(Full::default())
        .unwrap();
    send(request).await;
    assert_eq!(proxy.stats().copy_requests, 1);
    assert_eq!(proxy.stats().copied_bytes, 0);
    assert_eq!(proxy.stats().size_lookups, 0);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_binary_prints_its_url_first_and_forwards() {
    let (upstream_addr, seen) = upstream().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_latency-proxy"))
        .args([
            "--upstream",
            &format!("http://{upstream_addr}"),
            "--latency-ms",
            "1",
            "--copy-overhead-ms",
            "1",
            "--copy-bandwidth-mib-s",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (status, headers, _) = send(post(&url, "/", "x")).await;
    let (_, _, stats) = send(
        Request::get(format!("{url}{STATS_PATH}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, StatusCode::CREATED);
    assert!(headers.contains(&("x-upstream".into(), "fake".into())));
    let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The proxy with `faults` in front of a fresh moto, and SDK configurations through it and
/// straight to moto.
async fn faulty_moto(
    faults: &str,
) -> (
    fanout_tests::Emulator,
    Proxy,
    aws_config::SdkConfig,
    aws_config::SdkConfig,
) {
    let emulator = fanout_tests::Emulator::start();
    let proxy = Proxy::start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: emulator.endpoint.parse().unwrap(),
        latency: Duration::ZERO,
        copy: CopyModel::default(),
        overlap: false,
        record: false,
        faults: faults.parse().unwrap(),
    })
    .await
    .unwrap();
    let through = fanout_tests::sdk_config(&proxy.url()).await;
    let direct = emulator.sdk_config().await;
    (emulator, proxy, through, direct)
}

#[tokio::test]
async fn throttling_is_answered_in_each_services_dialect_and_the_sdk_retries_it() {
    let (_moto, proxy, through, direct) = faulty_moto("throttle=1").await;
    let table = fanout_tests::words::create_words_table(&direct).await;
    let err = aws_sdk_dynamodb::Client::new(&through)
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap_err();
    let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
    assert!(
        matches!(
            code.as_deref(),
            Some("ProvisionedThroughputExceededException" | "ThrottlingException")
        ),
        "{code:?}"
    );
    let err = aws_sdk_sns::Client::new(&through)
        .list_topics()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_sns::error::ProvideErrorMetadata::code(&err),
        Some("Throttling")
    );
    let counts = proxy.stats().faults;
    // The SDK's standard mode: three attempts a call, two of them retries.
    assert_eq!((counts.throttled, counts.retries), (6, 4), "{counts:?}");
}

#[tokio::test]
async fn a_reset_answer_was_applied_though_the_client_never_read_it() {
    let (_moto, proxy, through, direct) = faulty_moto("reset=1").await;
    let err = aws_sdk_sns::Client::new(&through)
        .create_topic()
        .name("made-through-resets")
        .send()
        .await
        .unwrap_err();
    // The head came, and the body broke off.
    assert!(
        matches!(err, aws_sdk_sns::error::SdkError::ResponseError(_)),
        "{err:?}"
    );
    let topics = aws_sdk_sns::Client::new(&direct)
        .list_topics()
        .send()
        .await
        .unwrap();
    assert!(topics.topics().iter().any(|t| t
        .topic_arn()
        .unwrap_or_default()
        .ends_with(":made-through-resets")));
    assert_eq!(proxy.stats().faults.resets, 3);
}

#[tokio::test]
async fn while_the_emulator_is_down_connections_are_refused_and_then_served_again() {
    let (_moto, proxy, through, _direct) = faulty_moto("").await;
    let sns = aws_sdk_sns::Client::new(&through);
    sns.list_topics().send().await.unwrap();
    let proxy = Arc::new(proxy);
    let outage = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.go_down(Duration::from_secs(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::net::TcpStream::connect(proxy.addr()).await;
    assert!(refused.is_err(), "a connection was accepted while down");
    outage.await.unwrap().unwrap();
    sns.list_topics().send().await.unwrap();
    assert_eq!(proxy.stats().faults.outages, 1);
}

#[tokio::test]
async fn above_s3s_write_rate_the_paced_copier_slows_down_and_copies_everything() {
    use fanout_copy_core::engine::{self, Quiet};
    use fanout_copy_core::pace::Aimd;
    use fanout_copy_core::plan::{PartSize, Thresholds};
    use fanout_copy_core::size::MIB;
    use fanout_copy_core::{CopyOptions, Location, RunSpec};
    use fanout_tests::copy::{body, bytes, create_bucket, put_object, s3, Carried};

    const RATE: f64 = 15.0;
    let (_moto, proxy, through, direct) = faulty_moto(&format!("slowdown-above={RATE}")).await;
    let client = s3(&direct);
    let (source, destination) = (
        create_bucket(&direct, "paced-source").await,
        create_bucket(&direct, "paced-backup").await,
    );
    let mut objects = Vec::new();
    for i in 0..60 {
        objects.push((format!("small/{i:03}"), 1000 + i));
    }
    for i in 0..2 {
        objects.push((format!("large/{i}"), 12 * MIB as usize));
    }
    for (i, (key, len)) in objects.iter().enumerate() {
        put_object(
            &client,
            &source,
            key,
            bytes(*len, i as u8),
            &Carried::sample(),
        )
        .await;
    }
    let ceiling = 32;
    let pace = std::sync::Arc::new(Aimd::new(ceiling));
    let options = CopyOptions {
        thresholds: Thresholds::new(5 * MIB, PartSize::Fixed(5 * MIB)).unwrap(),
        ..CopyOptions::default()
    };
    let store = fanout_copy_s3::S3Store::from_sdk(&through).with_pace(pace.clone());
    let copier = fanout_copy_core::Copier::new(store, options, ceiling).with_pace(pace.clone());
    let started = std::time::Instant::now();
    let summary = engine::run(
        &copier,
        RunSpec {
            run_id: "paced".into(),
            source: Location::new(&source, ""),
            destination: Location::new(&destination, ""),
            modified_since: None,
            include_archived: false,
        },
        false,
        None,
        &Quiet,
    )
    .await
    .unwrap();
    let took = started.elapsed().as_secs_f64();
    assert_eq!((summary.copied, summary.failed), (62, 0), "{summary:?}");
    for (i, (key, len)) in objects.iter().enumerate() {
        assert_eq!(
            body(&client, &destination, key).await,
            bytes(*len, i as u8),
            "{key}"
        );
    }
    let faults = proxy.stats().faults;
    let report = pace.report(&destination);
    assert!(faults.over_rate > 0, "S3's limit was never met: {faults:?}");
    assert!(report.cuts > 0 && report.lowest < ceiling, "{report:?}");
    assert!(report.raises > 0, "the limit never grew back: {report:?}");
    // Measured, not asserted: the rate the copies settled at.
    println!(
        "66 copy requests and the uploads' writes in {took:.1} s with {RATE} writes/s allowed: \
         {} refused above the rate, the limit cut {} times and raised {} times, lowest {}, last {}",
        faults.over_rate, report.cuts, report.raises, report.lowest, report.limit
    );
}
