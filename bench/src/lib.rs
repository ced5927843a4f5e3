//! Benchmark tools: a proxy that adds network latency in front of the AWS emulator, a model of
//! S3's copy speed, and the statistics the benchmarks report. The Lambda Runtime API stand-in
//! that drives a real function binary is one of the shared test tools
//! (`fanout_tests::runtime_api`).

pub mod copy_model;
pub mod proxy;
pub mod stats;
