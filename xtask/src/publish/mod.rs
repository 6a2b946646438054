//! Where built images go, as ko splits `pkg/publish` from `pkg/build`: one
//! publisher per destination behind one trait. Loading into docker,
//! minikube or kind, or pushing to a registry; a target or the command line
//! only picks one.

pub mod docker;
pub mod kind;
pub mod minikube;
pub mod publisher;
pub mod pull;
pub mod push;
pub mod registry;
