//! What one request may describe, the same for every front end: sizes
//! derived from a request are checked against these, with checked
//! arithmetic, before anything is allocated for them.

/// Bounds on what one request may describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most elements a request's tensors may hold together, and the
    /// largest any one dimension may be (also when another dimension is 0,
    /// so that an empty array cannot ask for a million column names).
    pub max_elements: usize,
}

impl Limits {
    /// The limits for bodies of at most `max_body_bytes`: the shortest JSON
    /// element is one digit and a comma, so a body carries at most half its
    /// length in elements (the binary forms carry fewer: one byte or more
    /// per element).
    pub fn for_body(max_body_bytes: usize) -> Self {
        Self {
            max_elements: (max_body_bytes / 2).max(1),
        }
    }
}
