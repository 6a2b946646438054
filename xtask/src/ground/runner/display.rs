//! How commands are shown: as a user would type them (quoted, secrets
//! masked), with a spinner and the live last line on a terminal, plain
//! lines otherwise, and every line with `--verbose`.

use std::process::Command;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::pump::Stream;

/// The command as a user would type it: environment, program, arguments,
/// each quoted when a shell would need it; values of variables whose names
/// say they are secret (`*TOKEN*`, `*PASSWORD*`, `*SECRET*`, `*_KEY`) masked.
pub fn shown(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            let k = k.to_string_lossy();
            let v = v?.to_string_lossy();
            Some(format!(
                "{k}={}",
                if is_secret(&k) {
                    "***".into()
                } else {
                    quote(&v)
                }
            ))
        })
        .collect();
    words.push(quote(&cmd.get_program().to_string_lossy()));
    words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    words.join(" ")
}

fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["TOKEN", "PASSWORD", "SECRET", "CREDENTIAL"]
        .iter()
        .any(|s| n.contains(s))
        || n.ends_with("_KEY")
}

/// Quotes a word for display only when a shell would need it: settings
/// values printed in hints (`cargo xtask context use <name>`) go through it
/// too, so that a copied command means what it says.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else if word.contains('\0') {
        // No shell word holds a NUL: shown, not quoted.
        format!("{word:?}")
    } else {
        // POSIX single quotes keep every byte but `'` itself, which is
        // closed, escaped and reopened.
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A JSON document on stdout is for the caller, never shown live (cargo's
/// `--message-format=json` lines, before its first stderr line).
fn machine_readable(stream: Stream, text: &str) -> bool {
    stream == Stream::Stdout && text.trim_start().starts_with('{')
}

/// The display of one running command.
pub struct Live<'a> {
    shown: &'a str,
    bar: Option<ProgressBar>,
    verbose: bool,
    seen_stderr: std::cell::Cell<bool>,
    /// Without a terminal: when the last "still running" line was printed.
    beat: std::cell::Cell<std::time::Instant>,
}

/// Without a terminal, a command that runs this long gets a line saying so
/// (with its last line of progress) this often, so that a log shows it is
/// alive: a cold build is minutes of silence otherwise.
const BEAT: Duration = Duration::from_secs(30);

impl<'a> Live<'a> {
    /// A spinner on a terminal; otherwise the command line, once.
    pub fn start(shown: &'a str, spinners: bool, verbose: bool) -> Self {
        let bar = spinners.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>3} {wide_msg}") {
                bar.set_style(style);
            }
            bar.set_message(shorten(shown, 100));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        if bar.is_none() {
            eprintln!("$ {shown}");
        }
        Self {
            shown,
            bar,
            verbose,
            seen_stderr: std::cell::Cell::new(false),
            beat: std::cell::Cell::new(std::time::Instant::now()),
        }
    }

    /// A line the command printed. The live line is stderr's (where tools
    /// print progress) once there is any; machine-readable stdout (cargo's
    /// JSON) is not shown.
    pub fn line(&self, stream: Stream, text: &str) {
        let is_err = stream == Stream::Stderr;
        let machine = machine_readable(stream, text);
        let shown = (is_err || !self.seen_stderr.get()) && !text.trim().is_empty() && !machine;
        if let Some(bar) = &self.bar
            && shown
        {
            bar.set_message(format!(
                "{}  {}",
                shorten(self.shown, 60),
                shorten(text.trim(), 80)
            ));
        }
        if self.bar.is_none() && !self.verbose && shown && self.beat.get().elapsed() >= BEAT {
            eprintln!(
                "  … still running `{}`: {}",
                shorten(self.shown, 60),
                shorten(text.trim(), 80)
            );
            self.beat.set(std::time::Instant::now());
        }
        self.seen_stderr.set(self.seen_stderr.get() || is_err);
        if self.verbose {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("    {text}")),
                None => eprintln!("    {text}"),
            }
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_json_on_stdout_is_not_shown_live() {
        let json = r#"{"reason":"compiler-artifact","package_id":"x"}"#;
        assert!(machine_readable(Stream::Stdout, json));
        assert!(!machine_readable(
            Stream::Stderr,
            "   Compiling tract-core v0.23.9"
        ));
        assert!(!machine_readable(Stream::Stdout, "pulling layer 1 of 3"));
    }

    #[test]
    fn a_quoted_word_splits_back_to_itself() {
        for word in [
            "plain-1.0",
            "",
            "two words",
            "it's",
            "'''",
            "$HOME `id` \\ \"x\"",
            "line\nbreak",
            "ünï",
        ] {
            let q = quote(word);
            assert_eq!(shlex::split(&q), Some(vec![word.to_owned()]), "{q}");
        }
        assert_eq!(quote("a:b/c@d"), "a:b/c@d");
        assert_eq!(quote("nul\0"), r#""nul\0""#);
    }
}
