//! `fanout-local`: the whole suite on one machine, without AWS or Docker.
//!
//! - `fanout-local demo`: start the stack, play the scripted scenario, print a transcript, stop
//!   everything; exit 0 only when every step matched what it expected.
//! - `fanout-local up`: start the stack and keep it running until Ctrl-C.
//! - `fanout-local plan`: print the wiring derived from infra/template.yaml.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod invoker;
mod pollers;
mod project;
mod resources;
mod scenario;
mod settings;
mod stack;
mod template;

#[derive(Parser)]
#[command(
    name = "fanout-local",
    about = "Run fanout on this machine: moto server, cargo lambda watch, and the template's wiring"
)]
struct Cli {
    /// The SAM template the stack is derived from.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack, play the scripted scenario, print a transcript, and stop.
    Demo,
    /// Start the stack and keep it running until Ctrl-C.
    Up,
    /// Print the resources and wiring derived from the template.
    Plan,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = match template::Plan::from_file(&cli.template, settings::LOCAL_PARAMETERS) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("fanout-local: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Plan => {
            print!("{}", stack::describe(&plan));
            ExitCode::SUCCESS
        }
        Command::Demo => run(plan, true).await,
        Command::Up => run(plan, false).await,
    }
}

async fn run(plan: template::Plan, demo: bool) -> ExitCode {
    let stack = match stack::Stack::start(plan, !demo).await {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("fanout-local: the stack did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = if demo {
        let passed = scenario::play(&stack).await;
        if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    } else {
        println!("{}", stack.usage());
        match tokio::signal::ctrl_c().await {
            Ok(()) => println!("\nstopping…"),
            Err(err) => eprintln!("fanout-local: cannot wait for Ctrl-C: {err}"),
        }
        ExitCode::SUCCESS
    };
    stack.stop().await;
    code
}
