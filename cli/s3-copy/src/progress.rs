//! The progress bar: bytes copied of those planned so far, rate and ETA, with object counts.
//! Drawn on standard error, and only on a terminal.

use std::sync::atomic::{AtomicU64, Ordering};

use fanout_copy_core::copier::{Copied, CopyError};
use fanout_copy_core::engine::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    bar: Option<ProgressBar>,
    planned: AtomicU64,
    done: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

impl Bar {
    pub fn new(on_terminal: bool) -> Self {
        let bar = on_terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Bar {
            bar,
            planned: AtomicU64::new(0),
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{}/{} objects, {} unchanged, {} failed",
                self.done.load(Ordering::Relaxed),
                self.planned.load(Ordering::Relaxed),
                self.skipped.load(Ordering::Relaxed),
                self.failed.load(Ordering::Relaxed),
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn planned(&self, objects: u64, bytes: u64) {
        self.planned.fetch_add(objects, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(bytes);
        }
        self.refresh();
    }

    fn skipped(&self, objects: u64) {
        self.skipped.fetch_add(objects, Ordering::Relaxed);
        self.refresh();
    }

    fn finished(&self, _key: &str, outcome: &Result<Copied, CopyError>) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(Copied::Copied { bytes, .. }) => {
                if let Some(bar) = &self.bar {
                    bar.inc(*bytes);
                }
            }
            Ok(Copied::Skipped) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Copied::Paused { .. }) | Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.refresh();
    }
}
