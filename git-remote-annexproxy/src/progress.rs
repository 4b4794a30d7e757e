//! The bytes relayed, drawn on stderr while a clone or push takes long.
//!
//! git asks for progress (`option progress true`) when its own stderr is a
//! terminal or `--progress` was given; it shows its own counters for
//! objects, so ours only adds what git cannot see: the bytes through the
//! tunnel and their rate. Nothing is drawn for the first second (most
//! fetches are over by then), nor when git asked for quiet.

use std::cell::Cell;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::helper::Options;
use crate::tunnel::Meter;

/// How long a transfer runs before the bar appears.
const DELAY: Duration = Duration::from_secs(1);
const TEMPLATE: &str = "{spinner} annexproxy: {binary_bytes} relayed ({binary_bytes_per_sec})";

/// Whether git's options ask for a bar at all.
pub fn wanted(options: &Options) -> bool {
    options.progress && options.verbosity >= 1
}

/// A bar that shows itself once the transfer has run [`DELAY`].
pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    /// Still to be shown (hidden so far, and wanted).
    pending: Cell<bool>,
    verbose: bool,
}

impl Bar {
    pub fn new(options: &Options) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style);
        }
        Bar {
            bar,
            started: Instant::now(),
            pending: Cell::new(wanted(options)),
            verbose: options.verbosity >= 2,
        }
    }

    /// Clears the bar; with `-v`, one summary line stays.
    pub fn finish(&self) {
        if self.verbose {
            eprintln!(
                "git-remote-annexproxy: {} bytes relayed in {:.1}s",
                self.bar.position(),
                self.started.elapsed().as_secs_f64()
            );
        }
        self.bar.finish_and_clear();
    }
}

impl Meter for Bar {
    fn relayed(&self, bytes: u64) {
        self.bar.inc(bytes);
        if self.pending.get() && self.started.elapsed() >= DELAY {
            self.pending.set(false);
            // hidden by indicatif itself when stderr is no terminal
            self.bar
                .set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            self.bar.enable_steady_tick(Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_only_when_git_asks_and_is_not_quiet() {
        let mut o = Options::default();
        assert!(!wanted(&o), "git sends no progress option: quiet");
        o.progress = true;
        assert!(wanted(&o));
        o.verbosity = 0;
        assert!(!wanted(&o), "-q wins");
    }

    #[test]
    fn counts_every_byte() {
        let o = Options {
            progress: true,
            ..Options::default()
        };
        let bar = Bar::new(&o);
        bar.relayed(10);
        bar.relayed(32);
        assert_eq!(bar.bar.position(), 42);
        // within the first second nothing is drawn
        assert!(bar.bar.is_hidden());
    }
}
