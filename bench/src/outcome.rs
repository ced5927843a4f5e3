//! What a chaos or load run checks beyond its own promises: that no function process died or
//! panicked, and how each function's memory went over the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::function::memory;

/// The options a chaos or load run shares: when the emulator goes away, and how often memory
/// is sampled.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// Take the emulator away from the functions this many seconds into the run.
    #[arg(long)]
    pub down_at_s: Option<f64>,
    /// How long the emulator stays away.
    #[arg(long, default_value_t = 5.0)]
    pub down_for_s: f64,
    /// Sample each function process's memory every this many seconds.
    #[arg(long, default_value_t = 10)]
    pub memory_every_s: u64,
}

impl RunOptions {
    /// The outage, if one was asked for, behind every one of `proxies`.
    pub fn outage(
        &self,
        proxies: Vec<std::sync::Arc<crate::proxy::Proxy>>,
    ) -> Option<JoinHandle<std::io::Result<()>>> {
        self.down_at_s.map(|at| {
            crate::proxy::outage(
                proxies,
                Duration::from_secs_f64(at.max(0.0)),
                Duration::from_secs_f64(self.down_for_s.max(0.0)),
            )
        })
    }

    pub fn sampler(&self, processes: Vec<(&str, u32)>) -> MemorySampler {
        MemorySampler::start(processes, Duration::from_secs(self.memory_every_s.max(1)))
    }
}

/// The failures a run found; it passes when there are none.
#[derive(Debug, Default)]
pub struct Outcome {
    failures: Vec<String>,
}

impl Outcome {
    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
    }

    /// Every function process must still be running (a Lambda function process never exits
    /// between invocations), and the functions' log, when there is one, must hold no panic.
    pub fn check_processes(&mut self, processes: &mut [Child], log: Option<&Path>) {
        let exited = processes
            .iter_mut()
            .filter_map(|child| match child.try_wait() {
                Ok(Some(status)) => Some(format!("pid {} {status}", child.id())),
                _ => None,
            })
            .collect::<Vec<_>>();
        if !exited.is_empty() {
            self.fail(format!(
                "{} function processes exited: {}",
                exited.len(),
                exited.join(", ")
            ));
        }
        if let Some(log) = log {
            match std::fs::read_to_string(log) {
                Ok(text) => {
                    let panics: Vec<&str> =
                        text.lines().filter(|l| l.contains("panicked at")).collect();
                    if let Some(first) = panics.first() {
                        self.fail(format!(
                            "{} panics in {}, the first: {first}",
                            panics.len(),
                            log.display()
                        ));
                    }
                }
                Err(err) => self.fail(format!("cannot read the log {}: {err}", log.display())),
            }
        }
    }

    /// Prints the verdict; an error when anything failed.
    pub fn finish(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.failures.is_empty() {
            println!("result: every promise held");
            return Ok(());
        }
        for failure in &self.failures {
            println!("FAILED: {failure}");
        }
        Err(format!("{} checks failed (see above)", self.failures.len()).into())
    }
}

/// Resident memory of named processes, sampled at an interval in the background.
pub struct MemorySampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Samples>,
}

/// The samples: for each function, (seconds since the start, each process's resident KiB).
pub struct Samples {
    pub every: Duration,
    pub by_function: BTreeMap<String, Vec<(f64, Vec<u64>)>>,
}

impl MemorySampler {
    pub fn start(processes: Vec<(&str, u32)>, every: Duration) -> MemorySampler {
        let processes: Vec<(String, u32)> = processes
            .into_iter()
            .map(|(name, pid)| (name.to_owned(), pid))
            .collect();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Samples {
                every,
                by_function: BTreeMap::new(),
            };
            let mut last = false;
            while !last {
                let at = started.elapsed().as_secs_f64();
                let mut now: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                for (name, pid) in &processes {
                    now.entry(name).or_default().push(memory(*pid).current_kib);
                }
                for (name, kib) in now {
                    samples
                        .by_function
                        .entry(name.to_owned())
                        .or_default()
                        .push((at, kib));
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => last = true,
                }
            }
            samples
        });
        MemorySampler { stop, task }
    }

    /// Takes a last sample and returns them all.
    pub async fn stop(self) -> Samples {
        self.stop.send_replace(true);
        self.task.await.unwrap_or(Samples {
            every: Duration::ZERO,
            by_function: BTreeMap::new(),
        })
    }
}

impl Samples {
    /// For each function: the largest process's resident memory after warm-up (the first
    /// quarter of the run) and at the end, and how much it grew in between.
    pub fn growth(&self) -> BTreeMap<&str, (u64, u64)> {
        self.by_function
            .iter()
            .filter_map(|(name, samples)| {
                let largest = |i: usize| samples[i].1.iter().copied().max().unwrap_or(0);
                let last = samples.len().checked_sub(1)?;
                Some((name.as_str(), (largest(last / 4), largest(last))))
            })
            .collect()
    }

    pub fn print(&self) {
        println!(
            "-- memory (resident, the largest process of each function, every {} s)",
            self.every.as_secs()
        );
        for (name, samples) in &self.by_function {
            let step = samples.len().div_ceil(12).max(1);
            let line: Vec<String> = samples
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i + 1 == samples.len())
                .map(|(_, sample)| sample)
                .map(|(at, kib)| {
                    let largest = kib.iter().copied().max().unwrap_or(0);
                    format!("{at:.0}s:{:.1}", largest as f64 / 1024.0)
                })
                .collect();
            println!("{name:<16} MiB {}", line.join(" "));
        }
        for (name, (warm, end)) in self.growth() {
            println!(
                "{name:<16} after warm-up {:.1} MiB, at the end {:.1} MiB ({:+.1} MiB)",
                warm as f64 / 1024.0,
                end as f64 / 1024.0,
                (end as f64 - warm as f64) / 1024.0
            );
        }
        println!();
    }
}
