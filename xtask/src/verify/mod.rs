//! Checking that what was deployed answers as it should: the smoke test of
//! each service and the contract tester.

pub mod contract;
pub mod smoke;

/// At most 300 characters of a body, for error messages and success lines.
pub fn bounded(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_string(),
    }
}
