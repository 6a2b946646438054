//! Numbers a server cannot represent. JSON (RFC 8259 §6) puts no bound on a
//! number literal, but every reader this protocol meets does: serde_json
//! refuses `1e400` ("number out of range"), Python's `json` and numpy read
//! it as `inf`, which `json.dumps` then writes as `Infinity` (not JSON). A
//! literal whose value lies beyond an IEEE 754 binary64's range (about
//! ±1.8e308) is therefore refused wherever it appears in a message, so that
//! no model computes with an infinity and no echo (the identity model,
//! `jsonData`, `meta.tags`) sends a client a number its reader rejects.
//! Literals that underflow (`1e-400`) read as zero in every reader and are
//! kept.

/// The first number in `text` (valid JSON) whose value overflows an f64:
/// its path (`data.ndarray[0][1]`, in serde_path_to_error's form) and a
/// message naming the literal (at most 40 characters of it) and the reason.
///
/// # Errors
/// That message, as `path: reason`.
pub fn check(text: &str) -> Result<(), String> {
    let s = text.as_bytes();
    let mut path: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'{' => {
                path.push(Frame::Key(None));
                i += 1;
            }
            b'[' => {
                path.push(Frame::Index(0));
                i += 1;
            }
            b'}' | b']' => {
                path.pop();
                i += 1;
            }
            b',' => {
                match path.last_mut() {
                    Some(Frame::Index(n)) => *n += 1,
                    Some(Frame::Key(k)) => *k = None,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(s, i);
                // A string right after `{` or `,` in an object is a key.
                if let Some(Frame::Key(k @ None)) = path.last_mut() {
                    *k = Some(text.get(i + 1..end.saturating_sub(1)).unwrap_or("").into());
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = s.get(i) {
                    i += 1;
                }
                let literal = text.get(start..i).unwrap_or("");
                if overflows(literal) {
                    return Err(format!(
                        "{}{}{} is beyond the range of a 64-bit float (about ±1.8e308): \
                         no model can compute with it, and JSON readers refuse it or read \
                         infinity; send a finite number within that range",
                        render(&path),
                        if path.is_empty() { "" } else { ": " },
                        shorten(literal)
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

enum Frame {
    /// In an object: the current key, once read.
    Key(Option<String>),
    /// In a list: the current element's index.
    Index(usize),
}

/// Whether a number literal's value is beyond f64's range. Only a literal
/// with an exponent or over 300 characters can be: the rest are not
/// parsed again.
fn overflows(literal: &str) -> bool {
    (literal.len() > 300 || literal.bytes().any(|b| b == b'e' || b == b'E'))
        && literal.parse::<f64>().is_ok_and(f64::is_infinite)
}

/// The index just past the string starting at `start` (its opening quote).
fn string_end(s: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

fn render(path: &[Frame]) -> String {
    let mut out = String::new();
    for frame in path {
        match frame {
            Frame::Key(Some(k)) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Key(None) => {}
            Frame::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

fn shorten(literal: &str) -> String {
    if literal.len() <= 40 {
        literal.to_string()
    } else {
        // Number literals are ASCII: any byte is a boundary.
        format!("{}… ({} characters)", &literal[..39], literal.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_literals_are_named_with_their_path() {
        let e = check(r#"{"data":{"ndarray":[[1, -10e330]]}}"#).expect_err("overflow");
        assert!(
            e.starts_with("data.ndarray[0][1]: -10e330 is beyond"),
            "{e}"
        );
        let e =
            check(r#"{"data":{"tensor":{"shape":[1],"values":[1e400]}}}"#).expect_err("overflow");
        assert!(
            e.starts_with("data.tensor.values[0]: 1e400 is beyond"),
            "{e}"
        );
        let e = check(r#"{"jsonData":{"a":[0,{"b":1E+309}]}}"#).expect_err("overflow");
        assert!(e.starts_with("jsonData.a[1].b: 1E+309"), "{e}");
        let e = check("1e999").expect_err("a bare number");
        assert!(e.starts_with("1e999 is beyond"), "{e}");
        let digits = "9".repeat(400);
        let e = check(&format!("[{digits}]")).expect_err("400 digits");
        assert!(e.contains("(400 characters)"), "{e}");
    }

    #[test]
    fn representable_literals_pass() {
        for ok in [
            r#"{"data":{"ndarray":[1.7976931348623157e308, -1e308, 1e-400, 0, -0.0]}}"#,
            r#"{"strData":"1e400 in a string is text","meta":{"tags":{"e":"\"1e999"}}}"#,
            r#"{"k\"e1e999":[123456789012345678901234567890]}"#,
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }
}
