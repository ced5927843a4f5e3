//! fanout-release: writes each function's release digest (`<Name>Digest`, the template's
//! `AutoPublishCodeSha256`) into CloudFormation parameter files, after `sam build`
//! (docs/deploy.md, "Versions that follow the configuration").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds every function's digest to each parameter file (its "Parameters"), in place.
    Digests {
        /// The SAM template.
        #[arg(long, default_value = "infra/template.yaml")]
        template: PathBuf,
        /// Where `sam build` put each function's artifact, in a folder named after it.
        #[arg(long, default_value = "infra/.aws-sam/build")]
        build_dir: PathBuf,
        /// CloudFormation parameter files ({"Parameters": {...}}), each given its own digests.
        #[arg(required = true)]
        params: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Command::Digests {
        template,
        build_dir,
        params,
    } = Args::parse().command;
    for file in &params {
        match fanout_release::write_digests(&template, &build_dir, file) {
            Ok(digests) => {
                for (parameter, digest) in digests {
                    println!("{}: {parameter} = {digest}", file.display());
                }
            }
            Err(e) => {
                eprintln!("fanout-release: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
