//! Progress: a live line on a terminal (done/total, running nodes, elapsed), plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    running: Mutex<Vec<String>>,
    quiet: bool,
}

impl Progress {
    /// A progress display on stderr; a live bar only when stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        let live = !quiet && std::io::stderr().is_terminal();
        let bar = live.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed_precise} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            bar,
            running: Mutex::new(Vec::new()),
            quiet,
        }
    }

    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(format!("spy: {msg}")),
            None => eprintln!("spy: {msg}"),
        }
    }

    /// Multi-line text (log tails) printed as is, even when quiet.
    pub fn block(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// `total` nodes to make, `substitutes` of them from binary caches.
    pub fn start(&self, total: usize, substitutes: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(0);
            b.enable_steady_tick(Duration::from_millis(200));
        } else if substitutes == 0 {
            self.line(&format!("{total} node(s) to build"));
        } else {
            self.line(&format!(
                "{} node(s) to build, {substitutes} to substitute from binary caches",
                total - substitutes
            ));
        }
    }

    fn refresh(&self) {
        if let Some(b) = &self.bar {
            let r = self.running.lock().map(|r| r.join(", ")).unwrap_or_default();
            b.set_message(r);
        }
    }

    /// `verb`: what is being done to the node ("building", "substituting").
    pub fn started(&self, node: &str, verb: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.push(format!("{verb} {node}"));
        }
        if self.bar.is_none() {
            self.line(&format!("{verb} {node}"));
        }
        self.refresh();
    }

    pub fn finished(&self, node: &str, msg: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|n| n.rsplit(' ').next() != Some(node));
        }
        if msg.starts_with("error") {
            self.block(&format!("spy: {msg}"));
        } else {
            self.line(msg);
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        self.refresh();
    }

    pub fn done(&self, secs: f64) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.line(&format!("done in {secs:.1}s"));
    }
}
