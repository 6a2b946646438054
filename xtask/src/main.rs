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

use clap::Parser;

use commands::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ground::interrupt::install();
    let result = ground::context::Ctx::new(&cli.global.options()).and_then(|cx| {
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
            Command::Completions(a) => a.run(<commands::Cli as clap::CommandFactory>::command()),
            Command::Service(a) => a.run(&cx),
            Command::Cluster(a) => a.run(&cx),
            Command::Context(a) => a.run(&cx),
            Command::Seldon(a) => a.run(&cx),
            Command::ContractTest(a) => a.run(&cx),
            Command::Bench(a) => a.run(&cx),
            Command::Release(a) => a.run(&cx),
        };
        cx.runner.print_plan(outcome.is_err());
        outcome
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
