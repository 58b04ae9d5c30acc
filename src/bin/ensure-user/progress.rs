//! Progress on stderr: a bar on a terminal, a plain line every few seconds
//! otherwise (logs, CI).

use std::{
    io::{self, IsTerminal, Write},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use ensure_user::{
    backfill::{Progress, Summary},
    store::Walk,
};

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

const BAR: &str = "[{elapsed_precise}] {wide_bar} {pos}/{len} {prefix} ({rate}, ETA {eta})\n{msg}";
const SPINNER: &str = "[{elapsed_precise}] {spinner} {pos} {prefix} ({rate})\n{msg}";

/// Shows a backfill's progress.
pub(super) enum Reporter {
    /// The bar, and the walk it shows.
    Bar(ProgressBar, Option<Walk>),
    Lines {
        started: Instant,
        last_line: Option<Instant>,
    },
}

impl Reporter {
    /// A bar when stderr is a terminal, plain lines otherwise. Nothing is
    /// shown before the first update.
    pub(super) fn for_stderr() -> Self {
        if io::stderr().is_terminal() {
            Self::Bar(
                ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
                None,
            )
        } else {
            Self::Lines {
                started: Instant::now(),
                last_line: None,
            }
        }
    }

    pub(super) fn update(&mut self, progress: &Progress) {
        match self {
            Self::Bar(bar, shown) => {
                if shown.is_some_and(|walk| walk != progress.walk) {
                    // The next walk starts a bar of its own, below the last.
                    bar.abandon();
                    *bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                }
                *shown = Some(progress.walk);
                if let Some(total) = progress.total {
                    bar.set_length(total.max(progress.position));
                }
                bar.set_position(progress.position);
                bar.set_message(progress.summary.to_string());
                if bar.is_hidden() {
                    let template = if progress.total.is_some() {
                        BAR
                    } else {
                        SPINNER
                    };
                    if let Ok(style) = ProgressStyle::with_template(template) {
                        bar.set_style(style.with_key(
                            "rate",
                            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                                let _ = write!(w, "{:.0}/s", state.per_sec());
                            },
                        ));
                    }
                    // A resumed run starts part-way: rate and ETA count from here.
                    bar.set_prefix(noun(progress.walk));
                    bar.reset_eta();
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(200));
                }
            }
            Self::Lines { started, last_line } => {
                let now = Instant::now();
                if last_line.is_some_and(|last| now - last < LINE_EVERY) {
                    return;
                }
                *last_line = Some(now);
                eprintln!("backfill: {}", line(progress.into(), now - *started));
            }
        }
    }

    pub(super) fn finish(&self) {
        if let Self::Bar(bar, _) = self {
            bar.abandon();
        }
    }

    /// Where log lines go: around the bar, so that it is redrawn below them.
    pub(super) fn log_writer(&self) -> LogWriter {
        LogWriter(match self {
            Self::Bar(bar, _) => Some(bar.clone()),
            Self::Lines { .. } => None,
        })
    }
}

/// What a progress line shows.
#[derive(Debug, Clone, Copy)]
struct Figures {
    walk: Walk,
    summary: Summary,
    position: u64,
    total: Option<u64>,
    resumed_from: u64,
}

impl From<&Progress> for Figures {
    fn from(progress: &Progress) -> Self {
        Self {
            walk: progress.walk,
            summary: progress.summary,
            position: progress.position,
            total: progress.total,
            resumed_from: progress.resumed_from,
        }
    }
}

/// What a walk's position counts: `users` or `organizations`.
fn noun(walk: Walk) -> &'static str {
    match walk {
        Walk::Users => "users",
        _ => "organizations",
    }
}

/// `1500/2600 users (57%), 2400 users/s, ETA 1 s; created 1500, …`, and
/// `memberships of 3/10 organizations …` for the memberships walk.
fn line(figures: Figures, elapsed: Duration) -> String {
    let Figures {
        walk,
        summary,
        position,
        total,
        resumed_from,
    } = figures;
    let unit = noun(walk);
    let of = if walk == Walk::Memberships {
        "memberships of "
    } else {
        ""
    };
    let done = position - resumed_from;
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let Some(total) = total.filter(|&total| total > 0) else {
        return format!("{of}{position} {unit}, {rate:.0} {unit}/s; {summary}");
    };
    let left = total.saturating_sub(position);
    let eta = if rate > 0.0 {
        format!("{:.0} s", left as f64 / rate)
    } else {
        "unknown".to_owned()
    };
    format!(
        "{of}{position}/{total} {unit} ({}%), {rate:.0} {unit}/s, ETA {eta}; {summary}",
        position.min(total) * 100 / total,
    )
}

/// Makes a [`LogLine`] per event.
#[derive(Clone)]
pub(super) struct LogWriter(Option<ProgressBar>);

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            bar: self.0.clone(),
            text: Vec::new(),
        }
    }
}

/// One log event, written to stderr in one piece when dropped.
pub(super) struct LogLine {
    bar: Option<ProgressBar>,
    text: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let write = || drop(io::stderr().write_all(&self.text));
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_rate_and_eta() {
        let progress = Figures {
            walk: Walk::Users,
            summary: Summary::default(),
            position: 1500,
            total: Some(2500),
            resumed_from: 500,
        };
        assert_eq!(
            line(progress, Duration::from_secs(2)),
            "1500/2500 users (60%), 500 users/s, ETA 2 s; \
             created 0, updated 0, unchanged 0, skipped 0, failed 0"
        );
        let unknown = Figures {
            total: None,
            ..progress
        };
        assert!(line(unknown, Duration::from_secs(1)).starts_with("1500 users, 1000 users/s"));
        let members = Figures {
            walk: Walk::Memberships,
            ..progress
        };
        assert!(
            line(members, Duration::from_secs(2))
                .starts_with("memberships of 1500/2500 organizations (60%)")
        );
    }
}
