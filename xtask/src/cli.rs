//! The command line. Each subcommand's args struct is run by its own module
//! (`impl DeployArgs { fn run(self, cx) }` lives in `deploy.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::image::{Builder, LoadInto};
use crate::targets::TargetName;

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    version,
    about = "Build, deploy, test and tear down the kube-mlops services",
    long_about = "Takes the services in services/ from source to a running, smoke-tested \
deployment: on this machine (local), in containers (docker), on minikube or kind, \
or on GKE. Settings come from xtask.toml at the workspace root.",
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
    /// Settings file (default: xtask.toml at the workspace root; built-in defaults when absent)
    #[arg(long, global = true, value_name = "FILE", env = "XTASK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print every command and step instead of running it; changes nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Show the output of every command as it runs
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Spinners with live output (auto: only when stderr is a terminal)
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check the tools each target needs: found, version, how to install
    #[command(after_help = "Examples:\n  cargo xtask doctor\n  cargo xtask doctor --target gke")]
    Doctor(DoctorArgs),
    /// Build the service binaries (release, one cargo invocation)
    #[command(after_help = "Examples:\n  cargo xtask build\n  cargo xtask build test-api")]
    Build(BuildArgs),
    /// Build, start, wait for readiness, smoke-test and print URLs
    #[command(
        after_help = "Examples:\n  cargo xtask deploy\n  cargo xtask deploy --target local test-api\n  cargo xtask deploy --target kind\n  cargo xtask deploy --seldon --target minikube\n  cargo xtask deploy --dry-run --target gke"
    )]
    Deploy(DeployArgs),
    /// Show whether each service is running and healthy (exit 1 if any is not)
    #[command(after_help = "Examples:\n  cargo xtask status")]
    Status(StatusArgs),
    /// Show a service's log
    #[command(
        after_help = "Examples:\n  cargo xtask logs test-api\n  cargo xtask logs test-api --tail 20 --follow"
    )]
    Logs(LogsArgs),
    /// Stop what deploy started; safe to run again
    #[command(
        after_help = "Examples:\n  cargo xtask teardown\n  cargo xtask teardown --target kind --cluster"
    )]
    Teardown(TeardownArgs),
    /// Build images from source (no daemon needed), load them, push them
    #[command(
        after_help = "Examples:\n  cargo xtask image build\n  cargo xtask image build test-api --builder docker\n  cargo xtask image load --into docker\n  cargo xtask image push --registry 127.0.0.1:5555/me --insecure"
    )]
    Image(ImageArgs),
    /// Start, stop or inspect the cluster of a Kubernetes target
    #[command(
        after_help = "Examples:\n  cargo xtask cluster up --target minikube\n  cargo xtask cluster status --target kind\n  cargo xtask cluster down --target gke --yes"
    )]
    Cluster(ClusterArgs),
    /// Install, check or remove Seldon Core (operator and ingress) with Helm
    #[command(
        after_help = "Examples:\n  cargo xtask seldon install --target minikube\n  cargo xtask seldon status --target minikube\n  cargo xtask deploy --seldon --target minikube\n  cargo xtask teardown --seldon --all --target minikube"
    )]
    Seldon(SeldonArgs),
    /// List, show or switch kube contexts, with the target each belongs to
    #[command(
        after_help = "Examples:\n  cargo xtask context list\n  cargo xtask context use minikube\n  cargo xtask context current\n  cargo xtask context check --target kind"
    )]
    Context(ContextArgs),
    /// Send random requests drawn from a Seldon contract.json and check every answer
    #[command(
        name = "contract-test",
        after_help = "Examples:\n  cargo xtask contract-test services/model-server/contract.json --port 5002 -b 5 -n 10\n  cargo xtask contract-test contract.json --tensor -p\n  cargo xtask contract-test contract.json --host 127.0.0.1 --port 8003 --api seldon/seldon-test-model"
    )]
    ContractTest(ContractTestArgs),
    /// Measure throughput and latency (needs wrk)
    #[command(
        after_help = "Examples:\n  cargo xtask bench test-api\n  cargo xtask bench test-api --duration 5"
    )]
    Bench(BenchArgs),
}

#[derive(Args, Clone, Debug)]
pub struct TargetArg {
    /// Where to run: local, docker, minikube, kind, gke (default: `default_target` in xtask.toml)
    #[arg(long, short = 't', value_enum, global = true)]
    pub target: Option<TargetName>,
}

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub target: TargetArg,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Services to build (default: all)
    pub services: Vec<String>,
}

#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Deploy the model as SeldonDeployments instead (needs `seldon install`)
    #[arg(long, conflicts_with = "services")]
    pub seldon: bool,
    /// Services to deploy (default: all)
    pub services: Vec<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArg,
}

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// The service whose log to show
    pub service: String,
    /// Show only the last N lines
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<usize>,
    /// Keep printing new lines until interrupted
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Only the SeldonDeployments `deploy --seldon` made
    #[arg(long)]
    pub seldon: bool,
    /// With --seldon: also uninstall Seldon Core, its ingress and namespaces
    #[arg(long, requires = "seldon")]
    pub all: bool,
    /// Also delete the cluster (`cluster down`; minikube, kind, gke)
    #[arg(long, conflicts_with = "seldon")]
    pub cluster: bool,
    /// With --cluster: do not ask before deleting a GKE cluster
    #[arg(long, requires = "cluster")]
    pub yes: bool,
}

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Create or start the cluster, wait for its API server, print cluster-info
    Up,
    /// Delete the cluster (GKE asks first, unless --yes)
    Down {
        /// Do not ask before deleting a GKE cluster
        #[arg(long)]
        yes: bool,
    },
    /// The cluster's state and whether its API server answers
    Status,
}

#[derive(Args)]
pub struct SeldonArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(subcommand)]
    pub command: SeldonCommand,
}

#[derive(Subcommand)]
pub enum SeldonCommand {
    /// The RBAC preamble, the ingress, the operator (pinned chart), the models' namespace; idempotent
    Install,
    /// Remove the operator, the ingress kube-mlops installed, their namespaces and the RBAC binding
    Uninstall,
    /// Operator version and readiness, CRD, ingress, namespace (exit 1 unless all are there)
    Status,
}

#[derive(Args)]
pub struct ContextArgs {
    #[command(subcommand)]
    pub command: ContextCommand,
}

#[derive(Subcommand)]
pub enum ContextCommand {
    /// Every context, the current one marked, with the target it matches
    List,
    /// Switch the kubeconfig's current context
    Use { name: String },
    /// The current context and its target
    Current,
    /// Exit 0 only if the context (current, or --context) is the target's own
    Check {
        #[command(flatten)]
        target: TargetArg,
        /// Check this context instead of the current one
        #[arg(long)]
        context: Option<String>,
    },
}

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build images: tagged <registry>/<name>:<version>-<git sha>, digest printed
    Build {
        /// Services whose images to build (default: all)
        services: Vec<String>,
        #[arg(long, value_enum, default_value_t = Builder::Native)]
        builder: Builder,
    },
    /// Build, then load the images into docker, minikube or kind
    Load {
        services: Vec<String>,
        #[arg(long, value_enum, default_value_t = LoadInto::Docker)]
        into: LoadInto,
        #[arg(long, value_enum, default_value_t = Builder::Native)]
        builder: Builder,
    },
    /// Build, then push the images through the OCI distribution API
    Push {
        services: Vec<String>,
        /// Registry and account to push to, e.g. 127.0.0.1:5555/me (default: [registry] in xtask.toml)
        #[arg(long)]
        registry: Option<String>,
        /// Use plain HTTP (a registry on loopback)
        #[arg(long)]
        insecure: bool,
        #[arg(long, value_enum, default_value_t = Builder::Native)]
        builder: Builder,
    },
}

#[derive(Args)]
pub struct ContractTestArgs {
    /// The contract: features (what to send) and targets (what must come back)
    pub contract: PathBuf,
    /// Host of the model server (or of the Seldon ingress, with --api)
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// Port (default: services.iris-model.port in xtask.toml)
    #[arg(long)]
    pub port: Option<u16>,
    /// Which endpoint to call
    #[arg(long, value_enum, default_value_t = Endpoint::Predict)]
    pub endpoint: Endpoint,
    /// Rows per request
    #[arg(short = 'b', long = "batch-size", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Number of requests
    #[arg(short = 'n', long = "n-requests", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub n_requests: u32,
    /// Send data.tensor instead of data.ndarray
    #[arg(long)]
    pub tensor: bool,
    /// Print each request and response
    #[arg(short = 'p', long)]
    pub print: bool,
    /// Call a SeldonDeployment through its ingress: NAMESPACE/DEPLOYMENT
    #[arg(long, value_name = "NAMESPACE/DEPLOYMENT")]
    pub api: Option<String>,
    /// Send the message form-encoded (json=...), as seldon-core-tester does
    #[arg(long)]
    pub form: bool,
    /// Seed for the random inputs, to repeat a run exactly
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Predict,
    SendFeedback,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to measure
    #[arg(value_enum)]
    pub subject: BenchSubject,
    /// Seconds per measurement
    #[arg(long, default_value_t = 10)]
    pub duration: u32,
    /// Concurrent connections
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Rounds: the servers are measured in turn this many times, and each
    /// one's median round is reported (alternating evens out drift)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum BenchSubject {
    /// GET /test_api against a minimal axum handler returning the same JSON
    TestApi,
    /// The tutorial's tensor payload against the identity and iris models
    ModelServer,
    /// Image sizes, native vs docker builder time, docker stop, redeploy time
    Images,
}
