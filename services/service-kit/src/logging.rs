//! Structured logs: JSON lines by default (what log collectors parse), plain
//! text with `LOG_FORMAT=text`. `RUST_LOG` filters as usual (default `info`;
//! tracing-subscriber's `EnvFilter` directives).

use anyhow::{Result, bail};
use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Errors name a `LOG_FORMAT` other than `json` or
/// `text`, and a `RUST_LOG` that is not a filter, instead of ignoring them.
pub fn init() -> Result<()> {
    let text = match std::env::var("LOG_FORMAT")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => false,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "json" => false,
            "text" => true,
            _ => bail!("invalid LOG_FORMAT={v:?}: expected json or text"),
        },
    };
    let filter = match std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        None => EnvFilter::new("info"),
        Some(v) => EnvFilter::try_new(&v).map_err(|e| {
            anyhow::anyhow!(
                "invalid RUST_LOG={v:?}: {e} (expected directives such as info or test_api=debug)"
            )
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // A second init (tests that build several servers) is harmless: ignore it.
    let _ = if text {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    Ok(())
}
