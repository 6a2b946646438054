//! The top layer: the command line. One file per subcommand, each holding
//! its clap `Args` beside its `run` (`impl DeployArgs { fn run(self, cx) }`);
//! clap appears nowhere below this folder.

pub mod adding;
pub mod args;
pub mod bench;
mod bench_dev_loop;
mod bench_runtimes;
pub mod build;
pub mod cluster;
pub mod completions;
pub mod context;
pub mod contract_test;
pub mod deploy;
pub mod dev;
pub mod doctor;
pub mod image;
pub mod invocation;
pub mod logs;
pub mod manifests;
pub mod model;
pub mod release;
pub mod render;
pub mod seldon;
pub mod service;
pub mod status;
pub mod teardown;
mod wrk;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ground::context::Options;
use args::{OutputArg, ProgressArg};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    version,
    about = "Build, deploy, test and tear down the kube-mlops services",
    long_about = "Takes the services in services/ from source to a running, smoke-tested \
deployment: on this machine (local), in containers (docker), or on a local or \
GKE Kubernetes cluster (--target lists them). Settings come from xtask.toml at the workspace \
root.",
    after_help = "Examples:\n  cargo xtask doctor\n  cargo xtask deploy              # build and run locally, smoke-test, print URLs\n  cargo xtask status\n  cargo xtask logs test-api\n  cargo xtask teardown\n  cargo xtask deploy --dry-run   # print the plan, change nothing\n  cargo xtask cluster up --target minikube && cargo xtask deploy --target minikube\n  cargo xtask seldon install --target minikube && cargo xtask deploy --seldon --target minikube"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone, Debug)]
pub struct GlobalArgs {
    /// Settings file (default: $XTASK_CONFIG when set and not empty, else xtask.toml at the
    /// workspace root; built-in defaults when absent)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print every command and step instead of running it; changes nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Show the output of every command as it runs
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Spinners with live output (auto: only when stderr is a terminal)
    #[arg(long, global = true, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Results on stdout as text, or as one JSON document for scripts
    /// (status, doctor, deploy, image build|push, release; a dry run's plan);
    /// progress stays on stderr
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,
}

impl GlobalArgs {
    pub fn options(&self) -> Options {
        Options {
            // An empty XTASK_CONFIG= (a shell unsetting it by hand) means unset.
            config: self.config.clone().or_else(|| {
                std::env::var_os("XTASK_CONFIG")
                    .filter(|v| !v.is_empty())
                    .map(Into::into)
            }),
            dry_run: self.dry_run,
            verbose: self.verbose,
            progress: self.progress.into(),
            output: self.output.into(),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Check the tools each target needs: found, version, how to install
    #[command(after_help = "Examples:\n  cargo xtask doctor\n  cargo xtask doctor --target gke")]
    Doctor(doctor::DoctorArgs),
    /// Build the service binaries (release, one cargo invocation)
    #[command(after_help = "Examples:\n  cargo xtask build\n  cargo xtask build test-api")]
    Build(build::BuildArgs),
    /// Build, start, wait for readiness, smoke-test and print URLs
    #[command(
        after_help = "Examples:\n  cargo xtask deploy\n  cargo xtask deploy --target local test-api\n  cargo xtask deploy --target kind\n  cargo xtask deploy --seldon --target minikube\n  cargo xtask deploy --dry-run --target gke"
    )]
    Deploy(deploy::DeployArgs),
    /// Deploy, then watch the sources and redeploy what a change affects (like skaffold dev)
    // Its after_help names the targets it runs on: `command()`.
    Dev(dev::DevArgs),
    /// Show whether each service is running and healthy (exit 1 if any is not)
    #[command(after_help = "Examples:\n  cargo xtask status")]
    Status(status::StatusArgs),
    /// Show a service's log
    #[command(
        after_help = "Examples:\n  cargo xtask logs test-api\n  cargo xtask logs test-api --tail 20 --follow"
    )]
    Logs(logs::LogsArgs),
    /// Stop what deploy started; safe to run again
    #[command(
        after_help = "Examples:\n  cargo xtask teardown\n  cargo xtask teardown --target kind --cluster"
    )]
    Teardown(teardown::TeardownArgs),
    /// Build images from source (no daemon needed), load them, push them
    #[command(
        after_help = "Examples:\n  cargo xtask image build\n  cargo xtask image build test-api --builder docker\n  cargo xtask image load --into docker\n  cargo xtask image push --registry 127.0.0.1:5555/me --insecure"
    )]
    Image(image::ImageArgs),
    /// Write deploy/'s manifests from the services' settings (or --check them)
    #[command(
        after_help = "Examples:\n  cargo xtask manifests\n  cargo xtask manifests --check   # in CI: fail on manifests the settings do not make"
    )]
    Manifests(manifests::ManifestsArgs),
    /// Add your own ONNX model as a service of the model server
    #[command(
        after_help = "Examples:\n  cargo xtask model add wine --onnx ~/wine.onnx\n  cargo xtask model add churn --onnx churn.onnx --class-names stay,leave --port 5010"
    )]
    Model(model::ModelArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  cargo xtask completions bash > ~/.local/share/bash-completion/completions/cargo-xtask\n  cargo xtask completions zsh > ~/.zfunc/_cargo-xtask"
    )]
    Completions(completions::CompletionsArgs),
    /// Add a new service crate (axum on service-kit) to the workspace and the settings
    #[command(
        after_help = "Examples:\n  cargo xtask service add hello\n  cargo xtask deploy hello"
    )]
    Service(service::ServiceArgs),
    /// Start, stop or inspect the cluster of a Kubernetes target
    #[command(
        after_help = "Examples:\n  cargo xtask cluster up --target minikube\n  cargo xtask cluster status --target kind\n  cargo xtask cluster down --target gke --yes"
    )]
    Cluster(cluster::ClusterArgs),
    /// Install, check or remove Seldon Core (operator and ingress) with Helm
    #[command(
        after_help = "Examples:\n  cargo xtask seldon install --target minikube\n  cargo xtask seldon status --target minikube\n  cargo xtask deploy --seldon --target minikube\n  cargo xtask teardown --seldon --all --target minikube"
    )]
    Seldon(seldon::SeldonArgs),
    /// List, show or switch kube contexts, with the target each belongs to
    #[command(
        after_help = "Examples:\n  cargo xtask context list\n  cargo xtask context use minikube\n  cargo xtask context current\n  cargo xtask context check --target kind"
    )]
    Context(context::ContextArgs),
    /// Send random requests drawn from a Seldon contract.json and check every answer
    #[command(
        name = "contract-test",
        after_help = "Examples:\n  cargo xtask contract-test services/model-server/contract.json --port 5002 -b 5 -n 10\n  cargo xtask contract-test contract.json --tensor -p\n  cargo xtask contract-test contract.json --host 127.0.0.1 --port 8003 --api seldon/seldon-test-model"
    )]
    ContractTest(contract_test::ContractTestArgs),
    /// Render a Kubernetes target's manifests with prebuilt images pinned by digest (no cluster needed)
    #[command(
        after_help = "Examples:\n  cargo xtask render --target gke --images build.json\n  cargo xtask render --target kind --images build.json -o rendered/\n  cargo xtask render --seldon --images build.json   (the SeldonDeployments, pinned)"
    )]
    Render(render::RenderArgs),
    /// Cut a version: images built twice and compared, pushed, signed and attested, manifests hydrated
    #[command(
        after_help = "Examples:\n  cargo xtask release keygen --key release.key\n  cargo xtask release bump minor\n  cargo xtask release --version 0.2.0 --registry ghcr.io/me --sign-key release.key --file-output build.json\n  cargo xtask release --version 0.2.0 --dry-run"
    )]
    Release(release::ReleaseArgs),
    /// Measure throughput and latency (needs wrk), image figures, the dev loop
    #[command(
        after_help = "Examples:\n  cargo xtask bench test-api\n  cargo xtask bench test-api --duration 5\n  cargo xtask bench images\n  cargo xtask bench dev-loop   (a fresh clone of HEAD in a temporary directory: cold build, then edits)"
    )]
    Bench(bench::BenchArgs),
}

/// The command line: `Cli`'s, with the help that lists targets made from
/// their registries (`targets::all`) at run time.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let (runs, refuses): (Vec<_>, Vec<_>) = crate::targets::all()
        .into_iter()
        .map(|(t, _)| t)
        .partition(|t| {
            crate::targets::for_name(
                *t,
                &crate::ground::settings::Config::default(),
                &Default::default(),
            )
            .is_ok_and(|t| t.dev_loop().is_ok())
        });
    let names = |v: &[crate::ground::settings::TargetName]| {
        v.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
    };
    let not = if refuses.is_empty() {
        String::new()
    } else {
        format!(" (not {})", names(&refuses))
    };
    Cli::command().mut_subcommand("dev", |c| {
        c.after_help(format!(
            "Examples:\n  cargo xtask dev\n  cargo xtask dev test-api --no-logs\n  cargo xtask dev \
             --target docker wine\n\nTargets: {}{not}.\nCtrl-C stops the loop and tears down \
             what it started (--keep leaves it running).",
            names(&runs)
        ))
    })
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand.
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
    }

    /// The dev loop's help names the targets it runs on, from the
    /// registries.
    #[test]
    fn the_dev_loop_names_its_targets() {
        let mut dev = super::command()
            .find_subcommand("dev")
            .cloned()
            .expect("dev");
        let help = dev.render_long_help().to_string();
        // GKE refuses a dev loop (its images go through a registry).
        assert!(
            help.contains("Targets: local, docker, minikube, kind"),
            "{help}"
        );
        assert!(help.contains(" (not gke)."), "{help}");
    }

    /// A subcommand's argument with a global one's id (`output`) panics
    /// only when that subcommand runs (clap finds the types differ then).
    #[test]
    fn no_subcommand_argument_shadows_a_global_one() {
        fn walk(cmd: &clap::Command, globals: &[String], path: &str, found: &mut Vec<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_global_set()) {
                if globals.iter().any(|g| g == a.get_id().as_str()) {
                    found.push(format!("{path}: {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, globals, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let cli = <super::Cli as clap::CommandFactory>::command();
        let globals: Vec<String> = cli
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(globals.contains(&"output".to_string()), "{globals:?}");
        let mut found = Vec::new();
        for sub in cli.get_subcommands() {
            walk(sub, &globals, sub.get_name(), &mut found);
        }
        assert!(found.is_empty(), "{found:?}");
    }
}
