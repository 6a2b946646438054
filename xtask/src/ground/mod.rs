//! The ground floor: what every capability and command stands on. Nothing
//! here knows the command line or any target: the runner (the one way to run
//! external commands), the settings (`xtask.toml`) and the services they
//! declare, the kube-context guard, HTTP and port checks, waiting under a
//! deadline, and Ctrl-C.

pub mod context;
pub mod conventions;
pub mod download;
pub mod files;
pub mod http;
pub mod interrupt;
pub mod kubecontext;
pub mod lock;
pub mod names;
pub mod net;
pub mod poll;
pub mod runner;
pub mod service_settings;
pub mod services;
pub mod settings;
pub mod settings_edit;
pub mod toml_files;
pub mod tools;
