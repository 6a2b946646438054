//! Checks of the names settings give to other systems, so that a typo is
//! an error naming the key before anything is built: Kubernetes' DNS-1123
//! labels, OCI image references (the distribution grammar, as oci-spec
//! parses it), container, cluster and project names.

use std::str::FromStr;

/// A DNS-1123 label (Kubernetes namespaces, service names): at most 63
/// lowercase letters, digits and '-', starting and ending alphanumeric.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(
            "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
                .into(),
        )
    }
}

/// `<host>/<account>/<image>` must parse as an OCI image reference; the
/// error says which part is wrong.
pub fn image_reference(host: &str, account: &str, image: &str) -> Result<(), (Part, String)> {
    let parse = |s: String| oci_client::Reference::from_str(&s).map(|r| (r, s));
    let (r, _) = parse(format!("{host}/{account}/x:latest")).map_err(|e| {
        let part = if parse(format!("{host}/x:latest")).is_err() {
            Part::Host
        } else {
            Part::Account
        };
        (part, e.to_string())
    })?;
    if let Some((_, port)) = host.rsplit_once(':')
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err((Part::Host, format!("port {port} is not in 1..=65535")));
    }
    if r.registry() != host {
        return Err((
            Part::Host,
            format!("reads as registry {:?}, not a host name", r.registry()),
        ));
    }
    let (r, _) = parse(format!("{host}/{account}/{image}:latest")).map_err(|e| {
        (
            Part::Image,
            format!("{e}: use lowercase letters, digits and separators (. _ -), e.g. \"my-model\""),
        )
    })?;
    if r.repository() != format!("{account}/{image}") {
        return Err((Part::Image, "is not one image name".into()));
    }
    Ok(())
}

/// A `HOST[:PORT]/ACCOUNT` to push under (`image push --registry`): the
/// same checks as `[registry]` in xtask.toml.
pub fn registry_base(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    let Some((host, account)) = trimmed.split_once('/') else {
        return Err(format!(
            "{s:?} has no account: write HOST/ACCOUNT, e.g. 127.0.0.1:5555/me"
        ));
    };
    image_reference(host, account, "x").map_err(|(part, why)| {
        let what = match part {
            Part::Host => format!("host {host:?}"),
            Part::Account | Part::Image => format!("account {account:?}"),
        };
        format!("{what} is not valid in an image reference: {why}")
    })?;
    Ok(trimmed.to_string())
}

/// Which part of an image reference is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Host,
    Account,
    Image,
}

/// A container, minikube profile or kind cluster name: letters, digits and
/// `_ . -`, starting with a letter or digit (what docker accepts).
pub fn container_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("must be letters, digits and _ . -, starting with a letter or digit".into())
    }
}

/// A GKE cluster name: lowercase letters, digits and '-', starting with a
/// letter, at most 40 characters.
pub fn gke_cluster(s: &str) -> Result<(), String> {
    let ok = s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("must be at most 40 lowercase letters, digits and '-', starting with a letter".into())
    }
}

/// A Google Cloud project id (6-30 lowercase letters, digits and '-',
/// starting with a letter) or a zone such as `us-central1-a`.
pub fn gcloud_id(s: &str, min: usize, max: usize) -> Result<(), String> {
    let ok = (min..=max).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be {min}-{max} lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

/// An image reference's parts: `repository[:tag][@digest]` (a `:` after the
/// last `/` starts the tag; before it, a registry port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Splits `reference` into its parts; nothing is validated.
pub fn split_image_reference(reference: &str) -> ImageReference {
    let (named, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (reference, None),
    };
    let (repository, tag) = match named.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (named, None),
    };
    ImageReference {
        repository: repository.to_string(),
        tag,
        digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["kube-mlops", "a", "seldon", "x1-2"] {
            assert!(dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Kube",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "../..",
            &"a".repeat(64),
        ] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_references() {
        assert_eq!(
            image_reference("docker.io", "kube-mlops", "test-api"),
            Ok(())
        );
        assert_eq!(
            image_reference("us-central1-docker.pkg.dev", "proj/repo", "model-server"),
            Ok(())
        );
        assert_eq!(image_reference("127.0.0.1:5555", "me", "a.b_c"), Ok(()));
        assert!(matches!(
            image_reference("docker.io", "kube-mlops", "../.."),
            Err((Part::Image, _))
        ));
        assert!(matches!(
            image_reference("docker.io", "kube-mlops", "Test-API"),
            Err((Part::Image, _))
        ));
        assert!(matches!(
            image_reference("docker.io", "kube-mlops", "a:b"),
            Err((Part::Image, _))
        ));
        assert!(matches!(
            image_reference("docker.io", "Me", "x"),
            Err((Part::Account, _))
        ));
        assert!(matches!(
            image_reference("bad host", "me", "x"),
            Err((Part::Host, _))
        ));
    }

    #[test]
    fn registry_bases_and_ports() {
        assert_eq!(
            registry_base("127.0.0.1:5555/me/").as_deref(),
            Ok("127.0.0.1:5555/me")
        );
        assert_eq!(registry_base("ghcr.io/acme").as_deref(), Ok("ghcr.io/acme"));
        let e = registry_base("localhost:5555").expect_err("no account");
        assert!(e.contains("has no account"), "{e}");
        let e = registry_base("localhost:99999/me").expect_err("port");
        assert!(e.contains("port 99999 is not in 1..=65535"), "{e}");
        let e = registry_base("localhost:0/me").expect_err("port");
        assert!(e.contains("port 0"), "{e}");
        let e = registry_base("Reg istry/me").expect_err("host");
        assert!(e.starts_with("host"), "{e}");
        let e = registry_base("ghcr.io/Acme").expect_err("account");
        assert!(e.starts_with("account \"Acme\""), "{e}");
    }

    #[test]
    fn other_names() {
        assert!(container_name("kube-mlops").is_ok());
        assert!(container_name("-x").is_err());
        assert!(container_name("a b").is_err());
        assert!(gke_cluster("k8s-test-cluster").is_ok());
        assert!(gke_cluster("K8s").is_err());
        assert!(gcloud_id("my-project-1", 6, 30).is_ok());
        assert!(gcloud_id("p", 6, 30).is_err());
    }
}
