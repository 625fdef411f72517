//! The queue: starts ready nodes, highest priority first, builds within one CPU budget (a GNU make
//! jobserver whose tokens each running build holds, and `make` inside it shares), substitutions
//! a few at a time beside them; on a failure it cancels running builds (or, with `keep_going`,
//! goes on with what does not depend on it). What running a node means is a [`Runner`]'s, so the
//! queue is tested with stand-in jobs.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use petgraph::graph::NodeIndex;
use spy_build::BuildError;

use crate::{Action, Progress, RealizeReport, SchedError, Schedule};

/// Downloads at once; they wait on the network, not the CPU, so they take no jobserver token.
const PARALLEL_SUBSTITUTIONS: usize = 4;

#[derive(Debug)]
pub(crate) enum Outcome {
    Built,
    Substituted(String),
    /// Another spy process made the entry while this one waited for the lock.
    AlreadyThere,
}

#[derive(Debug)]
pub(crate) enum JobError {
    Build(BuildError),
    /// The substitute was refused or broken; the node is to be built instead.
    Substitute(String),
}

enum Event {
    Token(std::io::Result<jobserver::Acquired>),
    Done(NodeIndex, Box<Result<Outcome, JobError>>, f64),
    Waiting(NodeIndex),
}

/// Makes one node; called from the queue's threads.
pub(crate) trait Runner: Sync {
    fn substitute(&self, n: NodeIndex, on_wait: &dyn Fn()) -> Result<Outcome, JobError>;
    /// A build holding one jobserver token; it stops when `cancel` is set.
    fn build(&self, n: NodeIndex, client: &jobserver::Client, cancel: &AtomicBool, on_wait: &dyn Fn()) -> Result<Outcome, JobError>;
    /// Where a build of `n` writes its log, for the progress line (none for stand-ins).
    fn log_path(&self, _n: NodeIndex) -> Option<std::path::PathBuf> {
        None
    }
}

/// How a queue run ended (an error only for the jobserver).
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// Labels of the nodes whose build failed.
    pub failed: Vec<String>,
    /// Nodes whose substitute was refused: to be built in a further round.
    pub fell_back: Vec<NodeIndex>,
    /// Nodes not started because something below them failed or fell back.
    pub skipped: HashSet<NodeIndex>,
}

/// Runs `sched` (`to_substitute` of its nodes are substitutions) with `runner`, `budget` CPUs in
/// all; `label` names nodes in messages and in `report`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    mut sched: Schedule,
    to_substitute: usize,
    runner: &impl Runner,
    label: &(dyn Fn(NodeIndex) -> String + Sync),
    budget: usize,
    keep_going: bool,
    ui: &Progress,
    report: &mut RealizeReport,
) -> Result<Finished, SchedError> {
    let jobs = budget.max(1);
    let client = jobserver::Client::new(jobs).map_err(|e| SchedError::Jobserver(e.to_string()))?;
    let cancel = AtomicBool::new(false);
    let mut ready: BinaryHeap<(u64, std::cmp::Reverse<usize>)> = BinaryHeap::new();
    let mut ready_subst: BinaryHeap<(u64, std::cmp::Reverse<usize>)> = BinaryHeap::new();
    let make_ready = |sched: &Schedule, n: NodeIndex, ready: &mut BinaryHeap<_>, ready_subst: &mut BinaryHeap<_>| {
        let item = (sched.priority[&n], std::cmp::Reverse(n.index()));
        match sched.action[&n] {
            Action::Build => ready.push(item),
            Action::Substitute => ready_subst.push(item),
        }
    };
    for n in sched.initially_ready() {
        make_ready(&sched, n, &mut ready, &mut ready_subst);
    }
    ui.start(sched.need.len(), to_substitute);
    let started = Instant::now();
    let mut failed: Vec<String> = Vec::new();
    let mut fell_back: Vec<NodeIndex> = Vec::new();
    let mut skipped: HashSet<NodeIndex> = HashSet::new();
    let mut running: HashMap<NodeIndex, jobserver::Acquired> = HashMap::new();
    let mut substituting = 0usize;
    let (tx, rx) = mpsc::channel::<Event>();

    // Tokens come from a helper thread that blocks on the jobserver pipe; each build holds one for
    // its whole run (the implicit token of the `make` inside it), so running builds plus the extra
    // jobs their makes take never exceed `jobs`.
    let token_tx = tx.clone();
    let helper = client
        .clone()
        .into_helper_thread(move |t| {
            let _ = token_tx.send(Event::Token(t));
        })
        .map_err(|e| SchedError::Jobserver(e.to_string()))?;
    let mut requested = 0usize;

    std::thread::scope(|scope| {
        loop {
            let stop_starting = !failed.is_empty() && !keep_going;
            if !stop_starting {
                while requested < ready.len() && running.len() + requested < jobs {
                    helper.request_token();
                    requested += 1;
                }
                while substituting < PARALLEL_SUBSTITUTIONS {
                    let Some((_, std::cmp::Reverse(ix))) = ready_subst.pop() else {
                        break;
                    };
                    let n = NodeIndex::new(ix);
                    substituting += 1;
                    ui.started(&label(n), "substituting");
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let t0 = Instant::now();
                        let r = runner.substitute(n, &|| {
                            let _ = tx.send(Event::Waiting(n));
                        });
                        let _ = tx.send(Event::Done(n, Box::new(r), t0.elapsed().as_secs_f64()));
                    });
                }
            }
            if running.is_empty() && substituting == 0 && (requested == 0 || stop_starting) {
                break;
            }
            let Ok(ev) = rx.recv() else { break };
            let ev = match ev {
                Event::Token(t) => {
                    requested = requested.saturating_sub(1);
                    let Ok(token) = t else { continue };
                    if stop_starting {
                        continue;
                    }
                    let Some((_, std::cmp::Reverse(ix))) = ready.pop() else { continue };
                    let n = NodeIndex::new(ix);
                    running.insert(n, token);
                    ui.started_with_log(&label(n), "building", runner.log_path(n));
                    let tx = tx.clone();
                    let (client, cancel) = (&client, &cancel);
                    scope.spawn(move || {
                        let t0 = Instant::now();
                        let r = runner.build(n, client, cancel, &|| {
                            let _ = tx.send(Event::Waiting(n));
                        });
                        let _ = tx.send(Event::Done(n, Box::new(r), t0.elapsed().as_secs_f64()));
                    });
                    continue;
                }
                other => other,
            };
            match ev {
                Event::Token(_) => {}
                Event::Waiting(n) => ui.line(&format!("waiting for another spy process to finish {}", label(n))),
                Event::Done(n, r, secs) => {
                    if sched.action[&n] == Action::Substitute {
                        substituting -= 1;
                    } else {
                        running.remove(&n);
                    }
                    let key = label(n);
                    match *r {
                        Ok(outcome) => {
                            match outcome {
                                Outcome::Built => {
                                    ui.finished(&key, &format!("built {key} in {secs:.1}s"));
                                    report.built.push(key);
                                }
                                Outcome::Substituted(url) => {
                                    ui.finished(&key, &format!("substituted {key} from {url} in {secs:.1}s"));
                                    report.substituted.push(key);
                                }
                                Outcome::AlreadyThere => {
                                    ui.finished(&key, &format!("{key} was made by another spy process"));
                                    report.reused_after_wait.push(key);
                                }
                            }
                            for d in sched.finished(n) {
                                if !skipped.contains(&d) {
                                    make_ready(&sched, d, &mut ready, &mut ready_subst);
                                }
                            }
                        }
                        Err(JobError::Substitute(why)) => {
                            ui.finished(&key, &format!("warning: not substituting {why}; building it instead"));
                            fell_back.push(n);
                            skipped.extend(sched.above(n));
                        }
                        Err(JobError::Build(BuildError::Cancelled { .. })) => ui.finished(&key, &format!("cancelled {key}")),
                        Err(JobError::Build(e)) => {
                            ui.finished(&key, &format!("error: {e}"));
                            if let BuildError::Failed { log, .. } = &e {
                                ui.block(&format!(
                                    "last lines of the log of {key}:\n{}\nfull log: {}",
                                    spy_build::log_tail(log, 25),
                                    log.display()
                                ));
                            }
                            failed.push(key);
                            // Everything above a failed node is skipped.
                            skipped.extend(sched.above(n));
                            if !keep_going {
                                cancel.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }
    });
    ui.done(started.elapsed().as_secs_f64());
    Ok(Finished {
        failed,
        fell_back,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::decide::tests::{acts, ix, set, G};
    use Action::{Build, Substitute};

    /// Stand-in jobs: records what started; fails, refuses or waits for cancellation as told.
    #[derive(Default)]
    struct Stub {
        fail: HashSet<usize>,
        refuse: HashSet<usize>,
        /// Builds that run until cancelled (at most 5 s, then succeed).
        slow: HashSet<usize>,
        started: Mutex<Vec<usize>>,
    }

    impl Stub {
        fn failing(n: usize) -> Stub {
            Stub {
                fail: [n].into(),
                ..Stub::default()
            }
        }
    }

    impl Runner for Stub {
        fn substitute(&self, n: NodeIndex, _on_wait: &dyn Fn()) -> Result<Outcome, JobError> {
            self.started.lock().unwrap().push(n.index());
            if self.refuse.contains(&n.index()) {
                return Err(JobError::Substitute("refused".into()));
            }
            Ok(Outcome::Substituted("file:///cache".into()))
        }
        fn build(&self, n: NodeIndex, _client: &jobserver::Client, cancel: &AtomicBool, _on_wait: &dyn Fn()) -> Result<Outcome, JobError> {
            self.started.lock().unwrap().push(n.index());
            let node = format!("n{}", n.index());
            if self.slow.contains(&n.index()) {
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(5) {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(JobError::Build(BuildError::Cancelled { node }));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if self.fail.contains(&n.index()) {
                return Err(JobError::Build(BuildError::Setup {
                    node,
                    message: "it failed".into(),
                }));
            }
            Ok(Outcome::Built)
        }
    }

    fn label(n: NodeIndex) -> String {
        format!("n{}", n.index())
    }

    fn run_with(g: &G, action: &[(usize, Action)], stub: &Stub, budget: usize, keep_going: bool) -> (Finished, RealizeReport) {
        let all: Vec<NodeIndex> = (0..g.0.len()).map(NodeIndex::new).collect();
        let sched = Schedule::new(g, &all, acts(action));
        let subs = action.iter().filter(|(_, a)| *a == Substitute).count();
        let mut report = RealizeReport::default();
        let done = run(sched, subs, stub, &label, budget, keep_going, &Progress::new(true), &mut report).unwrap();
        (done, report)
    }

    /// Three leaves of weights 1, 5 and 2, and a root needing all three.
    fn fan() -> G {
        G(vec![
            (ix(&[]), false, 1),
            (ix(&[]), false, 5),
            (ix(&[]), false, 2),
            (ix(&[0, 1, 2]), false, 1),
        ])
    }

    /// Two leaves, 0 and 1; 2 needs 0, 3 needs 1.
    fn two_pairs() -> G {
        G(vec![
            (ix(&[]), false, 1),
            (ix(&[]), false, 1),
            (ix(&[0]), false, 1),
            (ix(&[1]), false, 1),
        ])
    }

    #[test]
    fn the_highest_priority_starts_first_and_dependents_after() {
        let stub = Stub::default();
        let (done, report) = run_with(&fan(), &[(0, Build), (1, Build), (2, Build), (3, Build)], &stub, 1, false);
        assert_eq!(*stub.started.lock().unwrap(), [1, 2, 0, 3]);
        assert_eq!(report.built, ["n1", "n2", "n0", "n3"]);
        assert!(done.failed.is_empty() && done.fell_back.is_empty() && done.skipped.is_empty());
    }

    #[test]
    fn a_failure_cancels_running_builds_and_skips_what_is_above() {
        // 0 runs until cancelled, 1 fails, 2 needs 1.
        let g = G(vec![(ix(&[]), false, 9), (ix(&[]), false, 1), (ix(&[1]), false, 1)]);
        let stub = Stub {
            fail: [1].into(),
            slow: [0].into(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let (done, report) = run_with(&g, &[(0, Build), (1, Build), (2, Build)], &stub, 2, false);
        assert_eq!(done.failed, ["n1"]);
        assert_eq!(done.skipped, set(&[2]));
        assert!(report.built.is_empty(), "{:?}", report.built);
        assert!(t0.elapsed() < Duration::from_secs(4), "the slow build was not cancelled");
        // 0 (highest priority, so it got a token first) ran and was cancelled; 2 never started.
        assert!(stub.started.lock().unwrap().contains(&0));
        assert!(!stub.started.lock().unwrap().contains(&2));
    }

    #[test]
    fn keep_going_builds_what_does_not_depend_on_the_failure() {
        // 0 fails; 1 is fine.
        let stub = Stub::failing(0);
        let (done, report) = run_with(&two_pairs(), &[(0, Build), (1, Build), (2, Build), (3, Build)], &stub, 1, true);
        assert_eq!(done.failed, ["n0"]);
        assert_eq!(done.skipped, set(&[2]));
        assert_eq!(report.built, ["n1", "n3"]);
    }

    #[test]
    fn a_refused_substitute_falls_back_and_skips_its_dependents() {
        // 0 and 1 substituted (0 refused).
        let stub = Stub {
            refuse: [0].into(),
            ..Stub::default()
        };
        let (done, report) = run_with(
            &two_pairs(),
            &[(0, Substitute), (1, Substitute), (2, Build), (3, Build)],
            &stub,
            2,
            false,
        );
        assert!(done.failed.is_empty());
        assert_eq!(done.fell_back, ix(&[0]));
        assert_eq!(done.skipped, set(&[2]));
        assert_eq!(
            (report.substituted.clone(), report.built.clone()),
            (vec!["n1".to_string()], vec!["n3".to_string()])
        );
    }
}
