//! `cargo xtask completions SHELL`: the shell's completion script for every
//! subcommand and option of `cargo xtask` (clap_complete), on stdout. The
//! script completes the `cargo` command's `xtask` subcommand: in bash it
//! takes over `cargo`'s completion in the shells that load it; fish and zsh
//! add to theirs. The services' names (from the settings read) complete
//! the SERVICE arguments of deploy, dev, teardown, build, image, logs and
//! release.

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
    /// `cli`: the xtask's whole command line (main hands it over);
    /// `services`: the names the SERVICE arguments complete to.
    pub fn run(self, cli: clap::Command, services: &[String]) -> Result<ExitCode> {
        // `cargo xtask …` as the shell sees it: cargo with one subcommand.
        let mut cmd = clap::Command::new("cargo")
            .bin_name("cargo")
            .subcommand(with_services(cli, services).name("xtask"));
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

/// `cmd` with every SERVICE argument (ids `services` and `service`) offering
/// `names`, in every subcommand. Completion only: parsing keeps its own
/// check, which names the known services.
fn with_services(cmd: clap::Command, names: &[String]) -> clap::Command {
    let values: Vec<clap::builder::PossibleValue> = names
        .iter()
        .map(|n| clap::builder::PossibleValue::new(clap::builder::Str::from(leak(n))))
        .collect();
    let mut cmd = cmd;
    for id in ["services", "service"] {
        if cmd
            .get_arguments()
            .any(|a| a.get_id() == id && a.is_positional())
        {
            let values = values.clone();
            cmd = cmd.mut_arg(id, |a| {
                a.value_parser(clap::builder::PossibleValuesParser::new(values))
            });
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, |s| with_services(s, names));
    }
    cmd
}

/// clap's names are `&'static str` without its `string` feature; a
/// completion script is generated once per process.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn service_arguments_complete_to_the_settings_services() {
        let names = ["test-api".to_string(), "wine".to_string()];
        let mut cmd = clap::Command::new("cargo")
            .bin_name("cargo")
            .subcommand(with_services(crate::commands::Cli::command(), &names).name("xtask"));
        let mut script = Vec::new();
        // zsh: fish's generator offers no values for positional arguments.
        clap_complete::generate(Shell::Zsh, &mut cmd, "cargo", &mut script);
        let script = String::from_utf8_lossy(&script);
        for about in [
            "Services to deploy",
            "Services to run",
            "Only these services",
        ] {
            assert!(
                script
                    .lines()
                    .any(|l| l.contains(about) && l.contains("(test-api wine)")),
                "{about}: {script}"
            );
        }
    }
}
