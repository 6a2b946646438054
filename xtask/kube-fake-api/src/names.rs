//! The API server's name, label and quantity formats
//! (`k8s.io/apimachinery/pkg/util/validation`, `pkg/api/resource`), with its
//! wording, so a refusal reads as a real cluster's.

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
    characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
    or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
    alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
    (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters \
    or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. \
    'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', \
    and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
    '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric \
    characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
    'MyValue',  or 'my_value',  or '12345', regex used for validation is \
    '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' \
    or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
    '[-._a-zA-Z0-9]+')";
/// The pattern the API server quotes when a quantity does not parse.
pub const QUANTITY_PATTERN: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn label_shape(s: &str) -> bool {
    s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
        && s.chars().all(|c| lower_alnum(c) || c == '-')
}

/// An RFC 1123 label (container names, namespaces): the problems, empty if none.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !label_shape(s) {
        errs.push(DNS1123_LABEL.into());
    }
    errs
}

/// An RFC 1123 subdomain (most object names).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".into());
    }
    if !s.split('.').all(label_shape) {
        errs.push(DNS1123_SUBDOMAIN.into());
    }
    errs
}

/// An RFC 1035 label (Service names).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !(s.starts_with(|c: char| c.is_ascii_lowercase()) && label_shape(s)) {
        errs.push(DNS1035_LABEL.into());
    }
    errs
}

/// An IANA service name (container port names): at most 15 characters of
/// `a-z0-9-`, at least one letter, no hyphen at either end or twice in a row.
pub fn iana_svc_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".into());
    }
    if !s.chars().all(|c| lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn label_key(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        errs.extend(
            dns1123_subdomain(p)
                .into_iter()
                .map(|e| format!("prefix part {e}")),
        );
    }
    if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !qualified_name_part(name) {
        errs.push(QUALIFIED_NAME.into());
    }
    errs
}

pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !s.is_empty() && !qualified_name_part(s) {
        errs.push(LABEL_VALUE.into());
    }
    errs
}

pub fn config_key(s: &str) -> Vec<String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s != "."
        && s != "..";
    if ok {
        Vec::new()
    } else {
        vec![CONFIG_KEY.into()]
    }
}

/// A `resource.Quantity` (`128Mi`, `500m`, `1.5`, `2e3`) as a number, or
/// None when it does not parse.
pub fn quantity(s: &str) -> Option<f64> {
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(split);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => {
            let e = &exp[1..];
            let unsigned = e.trim_start_matches(['+', '-']);
            if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(e.parse().ok()?)
        }
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_the_api_server_parses_them() {
        assert_eq!(quantity("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("1.5"), Some(1.5));
        for bad in ["128Mb", "", "Mi", "1..5", "1e", "12 Mi", "0x10"] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_follow_rfc_1123_1035_and_iana() {
        assert!(dns1123_label("test-api").is_empty());
        assert!(!dns1123_label("Test_API").is_empty());
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(dns1035_label("svc1").is_empty());
        assert!(!dns1035_label("1svc").is_empty());
        assert!(iana_svc_name("http").is_empty());
        assert!(!iana_svc_name("http-metrics-port").is_empty());
        assert!(!iana_svc_name("8080").is_empty());
        assert!(label_key("app.kubernetes.io/name").is_empty());
        assert!(!label_key("bad key").is_empty());
        assert!(!label_value(&"x".repeat(64)).is_empty());
        assert!(label_value("").is_empty());
    }
}
