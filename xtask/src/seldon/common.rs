//! What the Seldon parts share: names, the selector of what `deploy
//! --seldon` creates, and the ingress in front of the models.

use std::process::Command;

use xshell::cmd;

use crate::ground::context::Ctx;
use crate::ground::conventions::MANAGED_BY;
use crate::ground::settings::{Ingress, Seldon};

/// The label selector of what `deploy --seldon` creates (deploy/seldon's
/// labels): kube-mlops' [`MANAGED_BY`] and the Seldon stack label.
pub fn seldon_selector() -> String {
    format!("{MANAGED_BY},kube-mlops.io/stack=seldon")
}
/// The SeldonDeployment CRD the operator installs.
pub const CRD: &str = "seldondeployments.machinelearning.seldon.io";

/// `kubectl --context <context> <args...>`.
pub fn kubectl<I, S>(cx: &Ctx, context: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    cmd!(cx.sh, "kubectl --context {context} {args...}").into()
}

/// `helm --kube-context <context> <args...>`.
pub fn helm<I, S>(cx: &Ctx, context: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    cmd!(cx.sh, "helm --kube-context {context} {args...}").into()
}

/// Namespace, service and port of the ingress in front of the models.
pub fn ingress_service(s: &Seldon) -> (&'static str, &'static str, u16) {
    match s.ingress {
        Ingress::Ambassador => ("ambassador", "ambassador", 80),
        Ingress::Istio => ("istio-system", "istio-ingressgateway", 80),
    }
}
