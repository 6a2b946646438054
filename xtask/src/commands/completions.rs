//! `cargo xtask completions SHELL`: the shell's completion script for every
//! subcommand and option of `cargo xtask` (clap_complete), on stdout. The
//! script completes the `cargo` command's `xtask` subcommand: in bash it
//! takes over `cargo`'s completion in the shells that load it; fish and zsh
//! add to theirs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsArgs {
    /// `cli`: the xtask's whole command line (main hands it over).
    pub fn run(self, cli: clap::Command) -> Result<ExitCode> {
        // `cargo xtask …` as the shell sees it: cargo with one subcommand.
        let mut cmd = clap::Command::new("cargo")
            .bin_name("cargo")
            .subcommand(cli.name("xtask"));
        // Into memory first: a closed pipe (`| head`) is then an error, not
        // a panic inside clap_complete.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "cargo", &mut script);
        match std::io::Write::write_all(&mut std::io::stdout().lock(), &script) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(e.into()),
        }
    }
}
