//! Benchmark tools: a proxy that adds network latency in front of the AWS emulator, a fake
//! Lambda Runtime API that drives a real function binary, and the statistics they report.

pub mod copy_model;
pub mod proxy;
pub mod runtime_api;
mod serve;
pub mod stats;
