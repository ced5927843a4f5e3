//! `fanout-local`: the whole suite on one machine, without AWS or Docker.
//!
//! - `fanout-local demo`: start the stack, play the scripted scenario, print a transcript, stop
//!   everything; exit 0 only when every step matched what it expected.
//! - `fanout-local up`: start the stack and keep it running until Ctrl-C (or SIGTERM).
//! - `fanout-local plan`: print the wiring derived from infra/template.yaml.
//!
//! Either way, when the command returns every process it started has ended (see `processes`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, Signal, SignalKind};

mod invoker;
mod pollers;
mod processes;
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

/// Runs the stack for the demo or until a signal, then stops every process it started.
async fn run(plan: template::Plan, demo: bool) -> ExitCode {
    // Before any process starts: from here on Ctrl-C and SIGTERM stop the stack instead of
    // killing this process and leaving the stack behind.
    let mut stop = match StopSignals::new() {
        Ok(stop) => stop,
        Err(err) => {
            eprintln!("fanout-local: cannot wait for Ctrl-C: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut supervisor = match processes::Supervisor::new() {
        Ok(supervisor) => supervisor,
        Err(err) => {
            eprintln!("fanout-local: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut code = tokio::select! {
        code = serve(plan, demo, &mut supervisor) => code,
        () = stop.received() => {
            println!("\nstopping…");
            if demo { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
    };
    if let Err(err) = supervisor.stop().await {
        eprintln!("fanout-local: {err}");
        code = ExitCode::FAILURE;
    }
    code
}

/// Starts the stack and plays the demo, or serves until the future is dropped.
async fn serve(
    plan: template::Plan,
    demo: bool,
    supervisor: &mut processes::Supervisor,
) -> ExitCode {
    let mut stack = match stack::Stack::start(plan, !demo, supervisor).await {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("fanout-local: the stack did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    if demo {
        return if scenario::play(&stack).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Err(err) = resources::put_sample_objects(&stack.plan, &stack.sdk).await {
        eprintln!("fanout-local: {err}");
        return ExitCode::FAILURE;
    }
    stack.echo_slack_posts();
    println!("{}", stack.usage());
    println!(
        "fanout-local ready: slack={} endpoint={}",
        stack.slack_url().unwrap_or_default(),
        stack.endpoint
    );
    std::future::pending().await
}

/// Ctrl-C, SIGTERM, and the terminal closing (SIGHUP).
struct StopSignals([Signal; 3]);

impl StopSignals {
    fn new() -> std::io::Result<StopSignals> {
        Ok(StopSignals([
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ]))
    }

    async fn received(&mut self) {
        let [interrupt, terminate, hangup] = &mut self.0;
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    }
}
