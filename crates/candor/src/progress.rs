//! Progress on stderr: a bar with rate and ETA on a terminal, plain lines otherwise (CI logs,
//! pipes), so that long audits are never silent and logs stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candor_runner::{Completed, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub enum Reporter {
    Bar(ProgressBar),
    Lines(Mutex<LineState>),
    Quiet,
}

pub struct LineState {
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

const LINE_EVERY: Duration = Duration::from_secs(2);

impl Reporter {
    pub fn new(total: u64, quiet: bool) -> Reporter {
        if quiet {
            return Reporter::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} responses · {per_sec} · ETA {eta}",
                )
                .expect("progress template parses"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Reporter::Bar(bar)
        } else {
            let now = Instant::now();
            Reporter::Lines(Mutex::new(LineState {
                total,
                done: 0,
                started: now,
                last: now,
            }))
        }
    }

    pub fn finish(&self) {
        match self {
            Reporter::Bar(bar) => bar.finish_and_clear(),
            Reporter::Lines(state) => {
                let s = state.lock().unwrap();
                eprintln!("candor: {}", line(&s));
            }
            Reporter::Quiet => {}
        }
    }
}

fn line(s: &LineState) -> String {
    let secs = s.started.elapsed().as_secs_f64().max(1e-9);
    format!(
        "{}/{} responses stored ({:.1}/s)",
        s.done,
        s.total,
        s.done as f64 / secs
    )
}

impl Progress for Reporter {
    fn advance(&self, batch: &[Completed]) {
        match self {
            Reporter::Bar(bar) => bar.inc(batch.len() as u64),
            Reporter::Lines(state) => {
                let mut s = state.lock().unwrap();
                s.done += batch.len() as u64;
                if s.last.elapsed() >= LINE_EVERY && s.done < s.total {
                    s.last = Instant::now();
                    eprintln!("candor: {}", line(&s));
                }
            }
            Reporter::Quiet => {}
        }
    }
}
