//! Logs of the pods behind a label selector, each line prefixed with its pod.

use anyhow::{Result, bail};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

pub async fn print(
    client: &Client,
    namespace: &str,
    selector: &str,
    tail: Option<i64>,
    follow: bool,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    if list.items.is_empty() {
        bail!(
            "no pods match {selector} in namespace {namespace}; is it deployed? (`cargo xtask status`)"
        );
    }
    let params = LogParams {
        tail_lines: tail,
        follow,
        ..LogParams::default()
    };
    let mut tasks = Vec::new();
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        let (pods, params) = (pods.clone(), params.clone());
        tasks.push(tokio::spawn(async move {
            let stream = pods.log_stream(&name, &params).await?;
            let mut lines = stream.lines();
            while let Some(line) = lines.try_next().await? {
                println!("[{name}] {line}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
