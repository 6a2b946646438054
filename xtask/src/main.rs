//! `cargo xtask`: kube-mlops automation. Parses the command line and
//! dispatches to one task module; everything else lives in those modules.

mod bench;
mod build;
mod cli;
mod cluster;
mod config;
mod context;
mod contract_test;
mod deploy;
mod doctor;
mod engine;
mod http;
mod image;
mod kubecontext;
mod logs;
mod names;
mod runner;
mod seldon;
mod services;
mod smoke;
mod status;
mod targets;
mod teardown;
mod tools;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = context::Ctx::new(&cli.global).and_then(|cx| {
        let outcome = match cli.command {
            cli::Command::Doctor(a) => a.run(&cx),
            cli::Command::Build(a) => a.run(&cx),
            cli::Command::Deploy(a) => a.run(&cx),
            cli::Command::Status(a) => a.run(&cx),
            cli::Command::Logs(a) => a.run(&cx),
            cli::Command::Teardown(a) => a.run(&cx),
            cli::Command::Image(a) => a.run(&cx),
            cli::Command::Cluster(a) => a.run(&cx),
            cli::Command::Context(a) => a.run(&cx),
            cli::Command::Seldon(a) => a.run(&cx),
            cli::Command::ContractTest(a) => a.run(&cx),
            cli::Command::Bench(a) => a.run(&cx),
        };
        cx.runner.print_plan();
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
