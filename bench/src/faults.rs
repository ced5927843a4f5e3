//! The faults the proxy can inject, so that a run shows what the functions do when AWS
//! misbehaves: throttling and 500s in each service's own dialect (the SDK classes them as it
//! would AWS's), a connection reset in the middle of an answer to a request the emulator has
//! applied, a request that is never answered, and the emulator gone for a while.
//!
//! A plan is written `throttle=0.1,500=0.02,reset=0.02,hang=0.005`: each kind is the share of
//! requests that get it, drawn per request from a generator seeded with `seed=` (0 by default),
//! so that a run's faults can be played again.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::seeded::SplitMix;

/// How long a hung request is held before its connection is closed: longer than the functions'
/// SDK read timeout (`fanout_aws::READ_TIMEOUT`), so that the SDK gives up first.
pub const DEFAULT_HANG: Duration = Duration::from_secs(15);

/// The share of requests that get each fault.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaultPlan {
    /// Answered with the service's throttling error (DynamoDB's
    /// `ProvisionedThroughputExceededException` or `ThrottlingException`, S3's `SlowDown`, SNS's
    /// `Throttling`, SQS's `ThrottlingException`), without reaching the emulator.
    pub throttle: f64,
    /// Answered 500 with the service's internal error, without reaching the emulator.
    pub server_error: f64,
    /// Passed to the emulator, which applies it; then the connection is reset halfway through
    /// the answer (or before it, when the answer has no body).
    pub reset: f64,
    /// Held for `hang_for` without an answer, then the connection is closed; never forwarded.
    pub hang: f64,
    #[serde(with = "seconds")]
    pub hang_for: Duration,
    pub seed: u64,
    /// Writes (PUT, POST, DELETE) a second above which each one is answered with the
    /// throttling error, as S3 answers `SlowDown` above a prefix's write rate (a token bucket
    /// of one second's writes); 0: no limit.
    pub slowdown_above: f64,
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            throttle: 0.0,
            server_error: 0.0,
            reset: 0.0,
            hang: 0.0,
            hang_for: DEFAULT_HANG,
            seed: 0,
            slowdown_above: 0.0,
        }
    }
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.throttle + self.server_error + self.reset + self.hang == 0.0
            && self.slowdown_above == 0.0
    }

    /// The same plan on the next seed: for a second proxy, whose faults should not fall on
    /// the same requests as the first's.
    pub fn reseeded(&self) -> FaultPlan {
        FaultPlan {
            seed: self.seed.wrapping_add(1),
            ..self.clone()
        }
    }
}

/// Why a fault plan was not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("`{0}` is not KIND=VALUE (the kinds: throttle, 500, reset, hang, hang-seconds, seed, slowdown-above)")]
    Shape(String),
    #[error(
        "`{0}` is not a fault kind (the kinds: throttle, 500, reset, hang, hang-seconds, seed, slowdown-above)"
    )]
    Kind(String),
    #[error("{kind}={value}: a share is a number from 0 to 1")]
    Share { kind: String, value: String },
    #[error("{kind}={value}: not a number ≥ 0")]
    Number { kind: String, value: String },
    #[error("the shares add up to {0}, more than 1")]
    Total(f64),
}

impl FromStr for FaultPlan {
    type Err = PlanError;

    fn from_str(text: &str) -> Result<Self, PlanError> {
        let mut plan = FaultPlan::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, value) = item
                .split_once('=')
                .ok_or_else(|| PlanError::Shape(item.to_owned()))?;
            let (kind, value) = (kind.trim(), value.trim());
            let share = |field: &mut f64| -> Result<(), PlanError> {
                match value.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => {
                        *field = v;
                        Ok(())
                    }
                    _ => Err(PlanError::Share {
                        kind: kind.to_owned(),
                        value: value.to_owned(),
                    }),
                }
            };
            let number = || PlanError::Number {
                kind: kind.to_owned(),
                value: value.to_owned(),
            };
            match kind {
                "throttle" => share(&mut plan.throttle)?,
                "500" => share(&mut plan.server_error)?,
                "reset" => share(&mut plan.reset)?,
                "hang" => share(&mut plan.hang)?,
                "hang-seconds" => {
                    plan.hang_for = value
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .ok_or_else(number)?
                }
                "seed" => plan.seed = value.parse().map_err(|_| number())?,
                "slowdown-above" => {
                    plan.slowdown_above = (value.parse::<f64>().ok())
                        .filter(|rate| rate.is_finite() && *rate >= 0.0)
                        .ok_or_else(number)?
                }
                other => return Err(PlanError::Kind(other.to_owned())),
            }
        }
        let total = plan.throttle + plan.server_error + plan.reset + plan.hang;
        if total > 1.0 {
            return Err(PlanError::Total(total));
        }
        Ok(plan)
    }
}

/// One fault, drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
    Reset,
    Hang,
}

/// The AWS service a request is for, by its protocol: what an error answer must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    Sqs,
    Sns,
    S3,
}

impl Service {
    /// DynamoDB and SQS (JSON protocol) name their operation in `x-amz-target`; SNS posts a
    /// form (query protocol); anything else is S3 (REST).
    pub fn of(headers: &HeaderMap) -> Service {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        match header("x-amz-target") {
            Some(target) if target.starts_with("DynamoDB") => Service::DynamoDb,
            Some(target) if target.starts_with("AmazonSQS") => Service::Sqs,
            _ if header("content-type")
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")) =>
            {
                Service::Sns
            }
            _ => Service::S3,
        }
    }
}

/// The answer a throttled or failed request gets: status, content type and body, as the
/// service writes them. `alternate` picks DynamoDB's second throttling error.
pub fn error_answer(
    service: Service,
    fault: Fault,
    alternate: bool,
) -> (StatusCode, &'static str, String) {
    let throttled = fault == Fault::Throttle;
    let json =
        |code: &str| format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#);
    let xml_error = |code: &str, message: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        )
    };
    match service {
        Service::DynamoDb => {
            let code = match (throttled, alternate) {
                (true, false) => {
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
                }
                (true, true) => "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                (false, _) => "com.amazonaws.dynamodb.v20120810#InternalServerError",
            };
            let status = if throttled {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, "application/x-amz-json-1.0", json(code))
        }
        Service::Sqs => {
            let (status, code) = if throttled {
                (
                    StatusCode::BAD_REQUEST,
                    "com.amazonaws.sqs#ThrottlingException",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "com.amazonaws.sqs#InternalError",
                )
            };
            (status, "application/x-amz-json-1.0", json(code))
        }
        Service::Sns => {
            let (status, kind, code) = if throttled {
                (StatusCode::BAD_REQUEST, "Sender", "Throttling")
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Receiver",
                    "InternalError",
                )
            };
            let body = format!(
                "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
                 <Type>{kind}</Type><Code>{code}</Code><Message>injected by the fault proxy\
                 </Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            );
            (status, "text/xml", body)
        }
        Service::S3 => {
            if throttled {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/xml",
                    xml_error("SlowDown", "Please reduce your request rate."),
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/xml",
                    xml_error("InternalError", "We encountered an internal error."),
                )
            }
        }
    }
}

/// What the proxy injected, by kind, and what it saw of the clients' retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    pub throttled: u64,
    /// Of the throttled, those above the rate limit (`slowdown-above`).
    pub over_rate: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub hangs: u64,
    /// Requests on open connections closed unanswered while the emulator was down (new
    /// connections were refused, and are not counted).
    pub refused_while_down: u64,
    /// Times the emulator went down.
    pub outages: u64,
    /// Requests an SDK marked as a retry (`amz-sdk-request: attempt=N` with N > 1).
    pub retries: u64,
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "throttled {}{}, 500s {}, resets {}, hangs {}, emulator down {} times \
             ({} requests on open connections closed unanswered); retries seen {}",
            self.throttled,
            if self.over_rate > 0 {
                format!(" ({} above the rate)", self.over_rate)
            } else {
                String::new()
            },
            self.server_errors,
            self.resets,
            self.hangs,
            self.outages,
            self.refused_while_down,
            self.retries
        )
    }
}

/// A full bucket: one second's requests.
fn plan_rate(plan: &FaultPlan) -> f64 {
    plan.slowdown_above.max(1.0)
}

/// Draws faults and counts them.
pub struct Injector {
    pub plan: FaultPlan,
    state: Mutex<SplitMix>,
    /// The rate limit's token bucket: tokens left, and when it was last filled.
    tokens: Mutex<(f64, std::time::Instant)>,
    over_rate: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    resets: AtomicU64,
    hangs: AtomicU64,
    pub(crate) refused_while_down: AtomicU64,
    pub(crate) outages: AtomicU64,
    retries: AtomicU64,
}

impl Injector {
    pub fn new(plan: FaultPlan) -> Injector {
        let seed = plan.seed;
        let full = plan_rate(&plan);
        Injector {
            plan,
            state: Mutex::new(SplitMix::new(seed)),
            tokens: Mutex::new((full, std::time::Instant::now())),
            over_rate: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
            refused_while_down: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// A number in [0, 1) from the plan's generator (SplitMix64).
    fn roll(&self) -> f64 {
        self.state.lock().expect("fault generator lock").unit()
    }

    /// The fault for one request, if any, counted; notes the request's retry marker. The rate
    /// limit counts writes only (PUT, POST, DELETE: S3's limit of 3,500 a second per prefix
    /// is on those, and reads have one of their own).
    pub fn draw(&self, method: &http::Method, headers: &HeaderMap) -> Option<Fault> {
        let attempt = headers
            .get("amz-sdk-request")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("attempt=")))
            .and_then(|n| n.parse::<u32>().ok());
        if attempt.is_some_and(|n| n > 1) {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        if self.plan.is_empty() {
            return None;
        }
        let write = matches!(
            *method,
            http::Method::PUT | http::Method::POST | http::Method::DELETE
        );
        if self.plan.slowdown_above > 0.0 && write && !self.take_token() {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            self.over_rate.fetch_add(1, Ordering::Relaxed);
            return Some(Fault::Throttle);
        }
        let plan = &self.plan;
        let roll = self.roll();
        let mut edge = 0.0;
        for (share, fault, counter) in [
            (plan.throttle, Fault::Throttle, &self.throttled),
            (plan.server_error, Fault::ServerError, &self.server_errors),
            (plan.reset, Fault::Reset, &self.resets),
            (plan.hang, Fault::Hang, &self.hangs),
        ] {
            edge += share;
            if roll < edge {
                counter.fetch_add(1, Ordering::Relaxed);
                return Some(fault);
            }
        }
        None
    }

    /// Takes one request's token from the rate limit's bucket, if one is left.
    fn take_token(&self) -> bool {
        let rate = self.plan.slowdown_above;
        let mut bucket = self.tokens.lock().expect("token bucket lock");
        let now = std::time::Instant::now();
        let (tokens, filled) = *bucket;
        let tokens = (tokens + (now - filled).as_secs_f64() * rate).min(rate.max(1.0));
        let taken = tokens >= 1.0;
        *bucket = (if taken { tokens - 1.0 } else { tokens }, now);
        taken
    }

    /// Alternates DynamoDB's two throttling errors.
    pub fn alternate(&self) -> bool {
        self.throttled.load(Ordering::Relaxed) % 2 == 0
    }

    pub fn counts(&self) -> FaultCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            throttled: load(&self.throttled),
            over_rate: load(&self.over_rate),
            server_errors: load(&self.server_errors),
            resets: load(&self.resets),
            hangs: load(&self.hangs),
            refused_while_down: load(&self.refused_while_down),
            outages: load(&self.outages),
            retries: load(&self.retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_every_kind_and_refuses_what_it_cannot_take() {
        let plan: FaultPlan =
            "throttle=0.1, 500=0.02,reset=0.02,hang=0.01,hang-seconds=12,seed=7,slowdown-above=40"
                .parse()
                .unwrap();
        assert_eq!(
            plan,
            FaultPlan {
                throttle: 0.1,
                server_error: 0.02,
                reset: 0.02,
                hang: 0.01,
                hang_for: Duration::from_secs(12),
                seed: 7,
                slowdown_above: 40.0,
            }
        );
        assert!(matches!(
            "slowdown-above=fast".parse::<FaultPlan>(),
            Err(PlanError::Number { .. })
        ));
        assert!("".parse::<FaultPlan>().unwrap().is_empty());
        assert!(matches!(
            "throttle".parse::<FaultPlan>(),
            Err(PlanError::Shape(_))
        ));
        assert!(matches!(
            "slow=0.1".parse::<FaultPlan>(),
            Err(PlanError::Kind(_))
        ));
        assert!(matches!(
            "500=1.5".parse::<FaultPlan>(),
            Err(PlanError::Share { .. })
        ));
        assert!(matches!(
            "hang-seconds=-1".parse::<FaultPlan>(),
            Err(PlanError::Number { .. })
        ));
        assert_eq!(
            "throttle=0.6,500=0.6".parse::<FaultPlan>(),
            Err(PlanError::Total(1.2))
        );
    }

    #[test]
    fn above_the_rate_every_request_is_throttled() {
        let injector = Injector::new("slowdown-above=50".parse().unwrap());
        let started = std::time::Instant::now();
        let mut passed = 0;
        while started.elapsed() < Duration::from_millis(500) {
            if injector
                .draw(&http::Method::PUT, &HeaderMap::new())
                .is_none()
            {
                passed += 1;
            }
        }
        // A full bucket (50) and 25 more in half a second: about 75, whatever was asked.
        assert!((60..=90).contains(&passed), "{passed} passed");
        let counts = injector.counts();
        assert!(counts.over_rate > 1000 && counts.over_rate == counts.throttled);
        // Reads are not limited.
        assert_eq!(injector.draw(&http::Method::GET, &HeaderMap::new()), None);
    }

    #[test]
    fn faults_are_drawn_at_their_shares_and_the_same_seed_draws_the_same() {
        let plan: FaultPlan = "throttle=0.1,500=0.02,reset=0.05,hang=0.01,seed=3"
            .parse()
            .unwrap();
        let draws = |plan: &FaultPlan| {
            let injector = Injector::new(plan.clone());
            let headers = HeaderMap::new();
            let faults: Vec<_> = (0..100_000)
                .map(|_| injector.draw(&http::Method::POST, &headers))
                .collect();
            (faults, injector.counts())
        };
        let (first, counts) = draws(&plan);
        let (again, _) = draws(&plan);
        assert_eq!(first, again);
        let near =
            |n: u64, share: f64| (n as f64 - share * 100_000.0).abs() < share * 100_000.0 * 0.1;
        assert!(near(counts.throttled, 0.1), "{counts:?}");
        assert!(near(counts.server_errors, 0.02), "{counts:?}");
        assert!(near(counts.resets, 0.05), "{counts:?}");
        assert!(near(counts.hangs, 0.01), "{counts:?}");
    }

    #[test]
    fn each_service_gets_its_own_dialect() {
        let mut headers = HeaderMap::new();
        assert_eq!(Service::of(&headers), Service::S3);
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert_eq!(Service::of(&headers), Service::Sns);
        headers.insert(
            "x-amz-target",
            "DynamoDB_20120810.UpdateItem".parse().unwrap(),
        );
        assert_eq!(Service::of(&headers), Service::DynamoDb);
        headers.insert("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        assert_eq!(Service::of(&headers), Service::Sqs);

        let (status, _, body) = error_answer(Service::S3, Fault::Throttle, false);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("<Code>SlowDown</Code>"));
        let (status, _, body) = error_answer(Service::DynamoDb, Fault::Throttle, false);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("ProvisionedThroughputExceededException"));
        let (_, _, body) = error_answer(Service::DynamoDb, Fault::Throttle, true);
        assert!(body.contains("#ThrottlingException"));
        let (status, _, body) = error_answer(Service::Sns, Fault::ServerError, false);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("<Code>InternalError</Code>"));
    }

    #[test]
    fn retries_are_counted_from_the_sdk_marker() {
        let injector = Injector::new(FaultPlan::default());
        let mut headers = HeaderMap::new();
        headers.insert("amz-sdk-request", "attempt=1; max=3".parse().unwrap());
        assert_eq!(injector.draw(&http::Method::POST, &headers), None);
        headers.insert("amz-sdk-request", "attempt=2; max=3".parse().unwrap());
        injector.draw(&http::Method::POST, &headers);
        assert_eq!(injector.counts().retries, 1);
    }
}
