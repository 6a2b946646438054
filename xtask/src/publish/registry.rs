//! Pushing to a registry through the OCI distribution API (`push.rs`),
//! under `<base>/<image name>` or the image's own repository; the
//! reference returned is pinned by digest.

use anyhow::{Context, Result};

use super::publisher::Publisher;
use super::push;
use crate::ground::context::Ctx;
use crate::ground::settings;
use crate::image::Image;

pub struct Registry {
    /// `HOST/ACCOUNT` to push under; None: the repository the image is named
    /// after (`[registry]` in xtask.toml).
    pub base: Option<String>,
    /// Plain HTTP (a registry on loopback).
    pub insecure: bool,
    /// The names of the other images that go to the same place (the
    /// settings' images): a blob one of them has is mounted, not uploaded.
    pub siblings: Vec<String>,
    /// `[registry]`: where images are named after without a `base`.
    pub settings: settings::Registry,
}

impl Registry {
    /// The repository `image` goes to, without a tag.
    pub fn repository(&self, image: &Image) -> String {
        match &self.base {
            Some(r) => format!("{}/{}", r.trim_end_matches('/'), image.name),
            None => image
                .reference
                .rsplit_once(':')
                .map_or(image.reference.clone(), |(r, _)| r.to_string()),
        }
    }
}

impl Registry {
    /// The repositories of `siblings` beside `image`'s.
    fn sibling_repositories(&self, image: &Image) -> Vec<String> {
        let own = self.repository(image);
        let base = own.rsplit_once('/').map_or("", |(b, _)| b);
        self.siblings
            .iter()
            .filter(|n| **n != image.name)
            .map(|n| format!("{base}/{n}"))
            .collect()
    }
}

impl Publisher for Registry {
    fn pushes(&self) -> bool {
        true
    }

    fn destination(&self, _cx: &Ctx) -> String {
        match &self.base {
            Some(b) => b.clone(),
            None => format!("{}/{}", self.settings.host, self.settings.account),
        }
    }

    fn preflight(&self, cx: &Ctx, image: &str) -> Result<()> {
        let repository = match &self.base {
            Some(b) => format!("{}/{image}", b.trim_end_matches('/')),
            None => {
                crate::image::naming::repository(&self.settings.host, &self.settings.account, image)
            }
        };
        if repository.contains('<') {
            return Ok(()); // a placeholder: its cause is a blocker already
        }
        match push::Upload::open(&repository, self.insecure) {
            Ok(_) => Ok(()),
            Err(e) => cx
                .runner
                .precondition(e.context(format!("pushing to {repository}"))),
        }
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        let repository = self.repository(image);
        let tagged = format!("{repository}:{}", image.tag);
        let what = format!(
            "push {} to {tagged} through the OCI distribution API{}",
            image.archive.display(),
            if self.insecure { " (plain HTTP)" } else { "" }
        );
        let pushed = cx.runner.effect(what, || {
            eprintln!("==> pushing {tagged}");
            let pushed = push::push(
                &image.archive,
                &repository,
                &image.tag,
                self.insecure,
                &self.sibling_repositories(image),
            )
            .with_context(|| format!("pushing {tagged}"))?;
            eprintln!("  ✓ pushed {tagged}: {}", pushed.summary());
            Ok(pushed.digest)
        })?;
        let pinned = format!(
            "{repository}@{}",
            pushed.as_deref().unwrap_or(image.digest.as_str())
        );
        if pushed.is_some() && !cx.json() {
            println!("{pinned}");
        }
        Ok(pinned)
    }
}
