//! What the word-count benchmarks run against: moto with the words table and topic, and
//! recording latency proxies in front of it.

use std::time::Duration;

use aws_config::SdkConfig;
use fanout_tests::words::create_words_table;
use fanout_tests::{sdk_config, Emulator};

use crate::faults::FaultPlan;
use crate::proxy::{Proxy, ProxyConfig};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// moto server with a words table and a words topic.
pub struct WordsEmulator {
    pub emulator: Emulator,
    /// A configuration that reaches moto directly, not through a proxy.
    pub direct: SdkConfig,
    pub table: String,
    pub topic_arn: String,
}

impl WordsEmulator {
    /// Starts moto and creates the table and a topic named `topic`-<this process's id>.
    pub async fn start(topic: &str) -> Result<WordsEmulator, Failure> {
        eprintln!("starting moto server…");
        let emulator = Emulator::start();
        let direct = sdk_config(&emulator.endpoint).await;
        let table = create_words_table(&direct).await;
        let topic_arn = aws_sdk_sns::Client::new(&direct)
            .create_topic()
            .name(format!("{topic}-{}", std::process::id()))
            .send()
            .await?
            .topic_arn
            .ok_or("moto created a topic without an ARN")?;
        Ok(WordsEmulator {
            emulator,
            direct,
            table,
            topic_arn,
        })
    }

    /// A proxy in front of moto that adds `latency` to every request, injects `faults` and logs
    /// each exchange.
    pub async fn recording_proxy(
        &self,
        latency: Duration,
        faults: FaultPlan,
    ) -> Result<Proxy, Failure> {
        Ok(Proxy::start(ProxyConfig {
            listen: "127.0.0.1:0".parse()?,
            upstream: self.emulator.endpoint.parse()?,
            latency,
            copy: Default::default(),
            overlap: false,
            record: true,
            faults,
        })
        .await?)
    }
}
