//! The one interface between the scheduler and whatever makes a node's output: a [`Realizer`]
//! for each way of making one (build and bootstrap in spy-build, fuse in spy-fuse, substitution
//! in spy-cache). The scheduler picks the realizer, the store's transaction
//! (`spy_store::Store::transact`) runs it; a realizer never locks, registers or decides anything.

use petgraph::graph::NodeIndex;
use spy_store::{Origin, Work};

use crate::{Plan, PlanNode};

/// Makes the output of one node of the kind it handles.
pub trait Realizer {
    type Error: std::error::Error;

    /// How the store is to record where the output came from (and whether it is made in place).
    fn origin(&self, node: &PlanNode) -> Origin;

    /// Fills `w` (its output directory, and the entry's log) with node `n`'s output. On an error
    /// the transaction discards everything in `w` but the log.
    fn realize(&self, plan: &Plan, n: NodeIndex, w: &mut Work) -> Result<(), Self::Error>;
}

impl Plan {
    /// Runs `r` for node `n` in a store transaction (`on_wait`: another process holds the node).
    pub fn realize_with<R: Realizer>(
        &self,
        store: &spy_store::Store,
        n: NodeIndex,
        r: &R,
        on_wait: impl FnOnce(),
    ) -> Result<spy_store::Transacted<()>, spy_store::TransactError<R::Error>> {
        store.transact(self.new_entry(n, r.origin(self.node(n))), on_wait, |w| r.realize(self, n, w))
    }
}
