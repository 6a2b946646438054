//! `cargo xtask`: kube-mlops automation. Parses the command line, makes the
//! context, installs the Ctrl-C handler, and dispatches to one command; the
//! layers below are described in ARCHITECTURE.md.

mod build;
mod commands;
mod devloop;
mod ground;
mod image;
mod manifests;
mod publish;
mod release;
mod seldon;
mod targets;
mod verify;

use std::process::ExitCode;

use clap::FromArgMatches;

use commands::{Cli, Command};

fn main() -> ExitCode {
    // Called by cargo as the rustc wrapper of a static build.
    if let Some(code) = build::link::as_wrapper() {
        return code;
    }
    // Output piped into `head` ends quietly (status 141, as a process
    // killed by SIGPIPE), instead of a panic on the closed stdout.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli =
        Cli::from_arg_matches(&commands::command().get_matches()).unwrap_or_else(|e| e.exit());
    ground::interrupt::install();
    let options = cli.global.options();
    let json = options.output == ground::runner::Format::Json;
    let mut planned = false;
    let result = commands::invocation::Invocation::new(&options).and_then(|cx| {
        let outcome = match cli.command {
            Command::Doctor(a) => a.run(&cx),
            Command::Build(a) => a.run(&cx),
            Command::Deploy(a) => a.run(&cx),
            Command::Dev(a) => a.run(&cx),
            Command::Status(a) => a.run(&cx),
            Command::Logs(a) => a.run(&cx),
            Command::Teardown(a) => a.run(&cx),
            Command::Image(a) => a.run(&cx),
            Command::Manifests(a) => a.run(&cx),
            Command::Model(a) => a.run(&cx),
            Command::Completions(a) => a.run(
                commands::command(),
                &ground::services::names(&cx.config.services),
            ),
            Command::Service(a) => a.run(&cx),
            Command::Cluster(a) => a.run(&cx),
            Command::Context(a) => a.run(&cx),
            Command::Seldon(a) => a.run(&cx),
            Command::ContractTest(a) => a.run(&cx),
            Command::Bench(a) => a.run(&cx),
            Command::Release(a) => a.run(&cx),
            Command::Render(a) => a.run(&cx),
        };
        planned = cx.runner.print_plan(outcome.as_ref().err());
        outcome
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            ground::interrupt::exit_if_interrupted();
            eprintln!("error: {e:#}");
            if json && !planned {
                // Scripts read stdout: one document, even for a failure.
                println!("{:#}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            ExitCode::FAILURE
        }
    }
}
