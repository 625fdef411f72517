//! Progress: a live line on a terminal (done/total, elapsed, and each running node with the phase
//! it is in and the last line of its log, as nix shows them), plain lines otherwise.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    running: Arc<Mutex<Vec<Running>>>,
    quiet: bool,
    /// The thread that follows the running builds' logs (live display only).
    follower: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

/// A node being made: its label, what is done to it, and where its log has been read to.
struct Running {
    label: String,
    verb: &'static str,
    log: Option<PathBuf>,
    tail: LogTail,
}

/// What the progress line shows of a build log: the phase the build is in (the driver's
/// `spy: phase NAME` lines) and the last non-empty line. Fed the log in chunks as it grows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogTail {
    pub phase: Option<String>,
    pub last_line: Option<String>,
    /// Bytes read so far.
    offset: u64,
    /// An unfinished last line, kept for the next chunk.
    partial: String,
}

/// At most this much of a log is read per refresh: a build that writes faster is shown from the
/// newest part (its phase line may then be skipped; the next one is seen).
const TAIL_READ: u64 = 64 * 1024;
/// An unfinished line is kept up to this size (the newest part of it), and a shown line is cut to
/// this many characters: a build that writes without newlines cannot make the follower grow.
const LINE_MAX: usize = 4096;
const SHOWN_MAX: usize = 200;

/// A line of build output as the progress line shows it: terminal-safe, cut to [`SHOWN_MAX`].
fn printable(line: &str) -> String {
    spy_build::terminal_safe(line)
        .chars()
        .take(SHOWN_MAX)
        .collect::<String>()
        .trim()
        .to_string()
}

impl LogTail {
    pub fn feed(&mut self, chunk: &str) {
        let text = std::mem::take(&mut self.partial) + chunk;
        // A carriage return ends a line too (progress meters redraw one line with it).
        let mut lines: Vec<&str> = text.split(['\n', '\r']).collect();
        let rest = lines.pop().unwrap_or_default();
        for line in lines {
            let line = line.trim();
            if let Some(phase) = line.strip_prefix("spy: phase ") {
                self.phase = Some(printable(phase));
            } else if !line.is_empty() {
                self.last_line = Some(printable(line));
            }
        }
        let mut cut = rest.len().saturating_sub(LINE_MAX);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        self.partial = rest[cut..].to_string();
    }

    /// Reads what `path` gained since the last call (bounded by [`TAIL_READ`]).
    fn follow(&mut self, path: &std::path::Path) {
        let Ok(mut f) = std::fs::File::open(path) else { return };
        let Ok(len) = f.metadata().map(|m| m.len()) else { return };
        if len < self.offset {
            *self = LogTail::default();
        }
        if len - self.offset > TAIL_READ {
            self.offset = len - TAIL_READ;
            self.partial.clear();
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.take(len - self.offset).read_to_end(&mut buf).is_ok() {
            self.offset += buf.len() as u64;
            self.feed(&String::from_utf8_lossy(&buf));
        }
    }

    /// `[phase] last line`, as the progress line shows it after the node's name.
    pub fn describe(&self) -> String {
        match (&self.phase, &self.last_line) {
            (Some(p), Some(l)) => format!(" [{p}] {l}"),
            (Some(p), None) => format!(" [{p}]"),
            (None, Some(l)) => format!(" {l}"),
            (None, None) => String::new(),
        }
    }
}

fn message(running: &[Running]) -> String {
    running
        .iter()
        .map(|r| format!("{} {}{}", r.verb, r.label, r.tail.describe()))
        .collect::<Vec<_>>()
        .join(" | ")
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
            running: Arc::new(Mutex::new(Vec::new())),
            quiet,
            follower: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
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
            self.follow_logs(b.clone());
        } else if substitutes == 0 {
            self.line(&format!("{total} node(s) to build"));
        } else {
            self.line(&format!(
                "{} node(s) to build, {substitutes} to substitute from binary caches",
                total - substitutes
            ));
        }
    }

    /// Every half second, what the running builds' logs gained goes into the live line. The logs
    /// are read with the list unlocked, so a slow file system never holds up the scheduler.
    fn follow_logs(&self, bar: ProgressBar) {
        let Ok(mut follower) = self.follower.lock() else { return };
        if follower.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        // A later round (substitutes refused, then built) follows its logs again.
        self.stop.store(false, Ordering::Relaxed);
        let (running, stop) = (self.running.clone(), self.stop.clone());
        *follower = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let followed: Vec<(String, PathBuf, LogTail)> = running
                    .lock()
                    .map(|r| {
                        r.iter()
                            .filter_map(|n| Some((n.label.clone(), n.log.clone()?, n.tail.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                let read: Vec<(String, LogTail)> = followed
                    .into_iter()
                    .map(|(label, log, mut tail)| {
                        tail.follow(&log);
                        (label, tail)
                    })
                    .collect();
                let msg = running.lock().map(|mut r| {
                    for (label, tail) in read {
                        if let Some(n) = r.iter_mut().find(|n| n.label == label) {
                            n.tail = tail;
                        }
                    }
                    message(&r)
                });
                if let Ok(msg) = msg {
                    bar.set_message(msg);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
    }

    fn refresh(&self) {
        if let Some(b) = &self.bar {
            let r = self.running.lock().map(|r| message(&r)).unwrap_or_default();
            b.set_message(r);
        }
    }

    /// `verb`: what is being done to the node ("building", "substituting").
    pub fn started(&self, node: &str, verb: &'static str) {
        self.started_with_log(node, verb, None);
    }

    /// As [`Progress::started`], for a build writing `log`: the live line follows it.
    pub fn started_with_log(&self, node: &str, verb: &'static str, log: Option<PathBuf>) {
        if let Ok(mut r) = self.running.lock() {
            r.push(Running {
                label: node.to_string(),
                verb,
                log,
                tail: LogTail::default(),
            });
        }
        if self.bar.is_none() {
            self.line(&format!("{verb} {node}"));
        }
        self.refresh();
    }

    pub fn finished(&self, node: &str, msg: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|n| n.label != node);
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
        self.stop_following();
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.line(&format!("done in {secs:.1}s"));
    }

    fn stop_following(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.follower.lock().ok().and_then(|mut f| f.take()) {
            let _ = h.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_following();
        // A realize that ended early (an error before `done`) leaves no live line behind.
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.finish_and_clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_phase_and_the_last_line_across_chunks() {
        let mut t = LogTail::default();
        t.feed("spy: phase configure\nchecking for gcc... yes\nchecking for ");
        assert_eq!(t.phase.as_deref(), Some("configure"));
        assert_eq!(t.last_line.as_deref(), Some("checking for gcc... yes"));
        // A line split across chunks is taken whole, blank lines are not "last lines".
        t.feed("cc... gcc\n\n   \nspy: phase build\n");
        assert_eq!(t.phase.as_deref(), Some("build"));
        assert_eq!(t.last_line.as_deref(), Some("checking for cc... gcc"));
        t.feed("make[1]: Entering directory '/build/x'\r\n");
        assert_eq!(t.describe(), " [build] make[1]: Entering directory '/build/x'");
        // A progress meter redrawn with carriage returns: its newest state.
        t.feed("10%\r55%\r");
        assert_eq!(t.last_line.as_deref(), Some("55%"));
        // A build's escape sequences never reach the terminal, and a shown line is cut.
        t.feed(&format!("\x1b]0;pwned\x07{}\n", "x".repeat(500)));
        let shown = t.last_line.clone().unwrap();
        assert!(
            !shown.contains('\x1b') && !shown.contains('\x07') && shown.chars().count() <= SHOWN_MAX,
            "{shown:?}"
        );
        // Output without any line end is kept only up to LINE_MAX.
        for _ in 0..100 {
            t.feed(&"y".repeat(10_000));
        }
        assert!(t.partial.len() <= LINE_MAX);
    }

    #[test]
    fn following_a_log_reads_only_what_it_gained_and_at_most_the_newest_part() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("x.log");
        let mut t = LogTail::default();
        t.follow(&log); // not there yet
        assert_eq!(t, LogTail::default());
        std::fs::write(&log, "spy: phase build\nfirst\n").unwrap();
        t.follow(&log);
        assert_eq!(t.describe(), " [build] first");
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        use std::io::Write;
        f.write_all(b"second\nthird (no newline yet)").unwrap();
        t.follow(&log);
        assert_eq!(t.describe(), " [build] second");
        // A burst larger than one read: the newest part is shown.
        let burst: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        f.write_all(burst.as_bytes()).unwrap();
        t.follow(&log);
        assert_eq!(t.last_line.as_deref(), Some("line 19999"));
        assert_eq!(t.offset, std::fs::metadata(&log).unwrap().len());
    }
}
