//! The scheduler's decisions, apart from any store, cache or process: from a closure, the nodes
//! already valid and what the caches answered, which nodes to substitute, which to build, which
//! caches to ask about next, and in which order to start the work. Everything here is pure, so it
//! is tested on small hand-made graphs.

use std::collections::{HashMap, HashSet};

use petgraph::graph::NodeIndex;
use spy_plan::Plan;

/// What the decisions need to know of the graph.
pub trait Dag {
    /// Direct dependencies.
    fn deps(&self, n: NodeIndex) -> &[NodeIndex];
    /// Never asked of a cache (`PlanNode::is_host_specific`).
    fn host_specific(&self, n: NodeIndex) -> bool;
    /// The relative cost of building it (a recipe's `weight`).
    fn weight(&self, n: NodeIndex) -> u64;
}

impl Dag for Plan {
    fn deps(&self, n: NodeIndex) -> &[NodeIndex] {
        &self.node(n).deps
    }
    fn host_specific(&self, n: NodeIndex) -> bool {
        self.node(n).is_host_specific()
    }
    fn weight(&self, n: NodeIndex) -> u64 {
        self.node(n).weight as u64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Build,
    Substitute,
}

/// What is known when deciding.
pub struct Facts<'a> {
    pub roots: &'a [NodeIndex],
    /// The closure of `roots`, dependencies before dependents.
    pub closure: &'a [NodeIndex],
    /// Nodes whose entry is complete in the store.
    pub valid: &'a HashSet<NodeIndex>,
    /// Whether any binary cache may be asked.
    pub caches: bool,
    /// Nodes whose substitute was refused in an earlier round: they are built.
    pub refused: &'a HashSet<NodeIndex>,
    /// Nodes the caches were asked about already.
    pub asked: &'a HashSet<NodeIndex>,
    /// Of those, the ones a cache holds a trusted entry for.
    pub found: &'a HashSet<NodeIndex>,
}

/// The outcome of one decision step.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Ask the caches about these nodes, then decide again.
    Ask(Vec<NodeIndex>),
    /// What to do with every node that must be made (valid and unneeded nodes are absent).
    Act(HashMap<NodeIndex, Action>),
}

/// Decides, dependents first: a substituted node needs nothing below it; a built one needs its
/// whole closure present (the sandbox mounts it), substituted or built in turn. So the caches are
/// asked level by level, only about nodes that turn out to be needed.
pub fn decide(dag: &impl Dag, f: &Facts) -> Step {
    let mut needed: HashSet<NodeIndex> = f.roots.iter().copied().collect();
    let mut action = HashMap::new();
    let mut to_ask = Vec::new();
    for &n in f.closure.iter().rev() {
        if !needed.contains(&n) || f.valid.contains(&n) {
            continue;
        }
        let askable = f.caches && !f.refused.contains(&n) && !dag.host_specific(n);
        if askable && !f.asked.contains(&n) {
            to_ask.push(n);
        } else if f.found.contains(&n) {
            action.insert(n, Action::Substitute);
        } else {
            action.insert(n, Action::Build);
            needed.extend(closure_of(dag, dag.deps(n)));
        }
    }
    if to_ask.is_empty() {
        Step::Act(action)
    } else {
        Step::Ask(to_ask)
    }
}

/// Every node reachable from `from` (included).
fn closure_of(dag: &impl Dag, from: &[NodeIndex]) -> HashSet<NodeIndex> {
    let mut seen = HashSet::new();
    let mut stack = from.to_vec();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend_from_slice(dag.deps(n));
        }
    }
    seen
}

/// The work of one round, in the order it can start.
#[derive(Debug)]
pub struct Schedule {
    /// Nodes to make, dependencies before dependents.
    pub need: Vec<NodeIndex>,
    pub action: HashMap<NodeIndex, Action>,
    /// Dependents within `need`.
    pub dependents: HashMap<NodeIndex, Vec<NodeIndex>>,
    /// How many of its dependencies within `need` each node waits for.
    pub waiting_on: HashMap<NodeIndex, usize>,
    /// Longest weighted path from the node to a root (its own weight included; a substitution
    /// weighs 1): the queue starts the highest first.
    pub priority: HashMap<NodeIndex, u64>,
}

impl Schedule {
    /// Orders the nodes `action` names along `closure` (dependencies first).
    pub fn new(dag: &impl Dag, closure: &[NodeIndex], action: HashMap<NodeIndex, Action>) -> Schedule {
        let need: Vec<NodeIndex> = closure.iter().copied().filter(|n| action.contains_key(n)).collect();
        let mut dependents: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
        let mut waiting_on = HashMap::new();
        for &n in &need {
            let deps: Vec<NodeIndex> = dag.deps(n).iter().copied().filter(|d| action.contains_key(d)).collect();
            waiting_on.insert(n, deps.len());
            for d in deps {
                dependents.entry(d).or_default().push(n);
            }
        }
        let mut priority: HashMap<NodeIndex, u64> = HashMap::new();
        for &n in need.iter().rev() {
            let above = dependents
                .get(&n)
                .map(|v| v.iter().map(|d| priority[d]).max().unwrap_or(0))
                .unwrap_or(0);
            let own = if action[&n] == Action::Build { dag.weight(n) } else { 1 };
            priority.insert(n, above + own);
        }
        Schedule {
            need,
            action,
            dependents,
            waiting_on,
            priority,
        }
    }

    /// Nodes to build (not substitute).
    pub fn builds(&self) -> usize {
        self.need.iter().filter(|n| self.action[n] == Action::Build).count()
    }

    /// Nodes that can start now: nothing they wait for is left.
    pub fn initially_ready(&self) -> Vec<NodeIndex> {
        self.need.iter().copied().filter(|n| self.waiting_on[n] == 0).collect()
    }

    /// `n` is done: the dependents that wait for nothing more.
    pub fn finished(&mut self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut ready = Vec::new();
        for &d in self.dependents.get(&n).into_iter().flatten() {
            let w = self.waiting_on.get_mut(&d).expect("dependent is scheduled");
            *w -= 1;
            if *w == 0 {
                ready.push(d);
            }
        }
        ready
    }

    /// Every node above `n` (its dependents, transitively): skipped when `n` fails.
    pub fn above(&self, n: NodeIndex) -> HashSet<NodeIndex> {
        let mut out = HashSet::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            for &d in self.dependents.get(&x).into_iter().flatten() {
                if out.insert(d) {
                    stack.push(d);
                }
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Per node: dependencies, host-specific, weight.
    pub(crate) struct G(pub Vec<(Vec<NodeIndex>, bool, u64)>);

    impl Dag for G {
        fn deps(&self, n: NodeIndex) -> &[NodeIndex] {
            &self.0[n.index()].0
        }
        fn host_specific(&self, n: NodeIndex) -> bool {
            self.0[n.index()].1
        }
        fn weight(&self, n: NodeIndex) -> u64 {
            self.0[n.index()].2
        }
    }

    pub(crate) fn ix(v: &[usize]) -> Vec<NodeIndex> {
        v.iter().map(|&i| NodeIndex::new(i)).collect()
    }
    pub(crate) fn set(v: &[usize]) -> HashSet<NodeIndex> {
        ix(v).into_iter().collect()
    }
    pub(crate) fn acts(v: &[(usize, Action)]) -> HashMap<NodeIndex, Action> {
        v.iter().map(|&(i, a)| (NodeIndex::new(i), a)).collect()
    }

    /// 0 host tools; 1 toolchain (needs 0); 2 lib (needs 1); 3 app (needs 1, 2); 4 release (needs 3).
    fn chain() -> G {
        G(vec![
            (ix(&[]), true, 1),
            (ix(&[0]), false, 5),
            (ix(&[1]), false, 2),
            (ix(&[1, 2]), false, 3),
            (ix(&[3]), false, 1),
        ])
    }

    fn step(g: &G, valid: &[usize], caches: bool, refused: &[usize], asked: &[usize], found: &[usize]) -> Step {
        let (valid, refused, asked, found) = (set(valid), set(refused), set(asked), set(found));
        decide(
            g,
            &Facts {
                roots: &ix(&[4]),
                closure: &ix(&[0, 1, 2, 3, 4]),
                valid: &valid,
                caches,
                refused: &refused,
                asked: &asked,
                found: &found,
            },
        )
    }

    #[test]
    fn without_caches_everything_missing_below_a_root_is_built() {
        let g = chain();
        use Action::Build;
        let all = acts(&[(0, Build), (1, Build), (2, Build), (3, Build), (4, Build)]);
        assert_eq!(step(&g, &[], false, &[], &[], &[]), Step::Act(all));
        // A build mounts its whole closure: what a valid input was built from must be there too.
        assert_eq!(
            step(&g, &[3], false, &[], &[], &[]),
            Step::Act(acts(&[(4, Build), (2, Build), (1, Build), (0, Build)]))
        );
        assert_eq!(step(&g, &[4], false, &[], &[], &[]), Step::Act(HashMap::new()));
    }

    #[test]
    fn caches_are_asked_only_about_needed_nodes_never_host_tools_or_refusals() {
        let g = chain();
        use Action::{Build, Substitute};
        // First only the root.
        assert_eq!(step(&g, &[], true, &[], &[], &[]), Step::Ask(ix(&[4])));
        // Found: nothing below it is needed.
        assert_eq!(step(&g, &[], true, &[], &[4], &[4]), Step::Act(acts(&[(4, Substitute)])));
        // Not found: it is built, and the closure its build mounts is asked about next (not the
        // host tools, which are built).
        assert_eq!(step(&g, &[], true, &[], &[4], &[]), Step::Ask(ix(&[3, 2, 1])));
        assert_eq!(
            step(&g, &[], true, &[], &[4, 3, 2, 1], &[3, 2, 1]),
            Step::Act(acts(&[(4, Build), (3, Substitute), (2, Substitute), (1, Substitute), (0, Build)]))
        );
        assert_eq!(
            step(&g, &[], true, &[], &[4, 3, 2, 1], &[2]),
            Step::Act(acts(&[(4, Build), (3, Build), (2, Substitute), (1, Build), (0, Build)]))
        );
        // A refused substitute is built without asking again.
        assert_eq!(step(&g, &[], true, &[4], &[], &[]), Step::Ask(ix(&[3, 2, 1])));
        // Valid nodes are never asked about.
        assert_eq!(step(&g, &[3, 2], true, &[], &[4], &[]), Step::Ask(ix(&[1])));
    }

    #[test]
    fn the_schedule_orders_by_longest_weighted_path_and_releases_dependents() {
        let g = chain();
        use Action::{Build, Substitute};
        let mut s = Schedule::new(
            &g,
            &ix(&[0, 1, 2, 3, 4]),
            acts(&[(4, Build), (3, Build), (2, Substitute), (1, Build), (0, Build)]),
        );
        assert_eq!(s.need, ix(&[0, 1, 2, 3, 4]));
        assert_eq!(s.builds(), 4);
        // 4: 1; 3: 1+3; 2 (substituted, weighs 1): 4+1; 1: max(4, 5)+5; 0: 10+1.
        let p: Vec<u64> = s.need.iter().map(|n| s.priority[n]).collect();
        assert_eq!(p, vec![11, 10, 5, 4, 1]);
        assert_eq!(s.initially_ready(), ix(&[0]));
        assert_eq!(s.finished(NodeIndex::new(0)), ix(&[1]));
        let mut after_1 = s.finished(NodeIndex::new(1));
        after_1.sort();
        assert_eq!(after_1, ix(&[2]));
        assert_eq!(s.finished(NodeIndex::new(2)), ix(&[3]));
        assert_eq!(s.above(NodeIndex::new(1)), set(&[2, 3, 4]));
        assert_eq!(s.above(NodeIndex::new(4)), set(&[]));
    }
}
