//! Benchmark tools: a proxy that adds network latency in front of the AWS emulator, a model of
//! S3's copy speed, the copy fan-out simulated on that model in virtual time, the function
//! processes and Slack requests the word-count benchmarks use, and the statistics the
//! benchmarks report. The Lambda Runtime API stand-in
//! that drives a real function binary is one of the shared test tools
//! (`fanout_tests::runtime_api`).

pub mod copy_model;
pub mod fanout_sim;
pub mod faults;
pub mod function;
pub mod outcome;
pub mod proxy;
pub mod scale_sim;
pub mod seeded;
pub mod slack;
pub mod sqs_source;
pub mod stats;
pub mod words;
