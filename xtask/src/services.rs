//! The services in services/ that the xtask builds and deploys.

use anyhow::{Result, bail};

use crate::config::{Config, ServiceSettings};

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Name used on the command line, in state files and as the Cargo package.
    pub name: &'static str,
    /// The binary target the package builds.
    pub bin: &'static str,
    pub settings: ServiceSettings,
}

/// Every deployable service, in deploy order.
pub fn all(config: &Config) -> Vec<ServiceSpec> {
    vec![ServiceSpec {
        name: "test-api",
        bin: "test-api",
        settings: config.services.test_api.clone(),
    }]
}

/// The named services, or all of them when `names` is empty.
pub fn select(config: &Config, names: &[String]) -> Result<Vec<ServiceSpec>> {
    let all = all(config);
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| match all.iter().find(|s| s.name == n) {
            Some(s) => Ok(s.clone()),
            None => bail!(
                "unknown service `{n}`; known services: {}",
                all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_service_lists_known_ones() {
        let err = select(&Config::default(), &["nope".into()]).expect_err("unknown");
        assert!(err.to_string().contains("unknown service `nope`"), "{err}");
        assert!(err.to_string().contains("test-api"), "{err}");
    }

    #[test]
    fn empty_selection_is_all() -> Result<()> {
        assert_eq!(
            select(&Config::default(), &[])?.len(),
            all(&Config::default()).len()
        );
        Ok(())
    }
}
