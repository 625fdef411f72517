//! Profiling aid: resolves a graph directory repeatedly and prints the fastest run.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: prof_resolve GRAPH_DIR"));
    let g = spy_recipe::Graph::load(&dir, &[]).unwrap();
    let mut best = std::time::Duration::MAX;
    for _ in 0..15 {
        let t0 = std::time::Instant::now();
        let p = spy_plan::resolve_all(&g, &mut spy_plan::ProbeCache::in_memory()).unwrap();
        best = best.min(t0.elapsed());
        std::hint::black_box(p);
    }
    eprintln!("fastest resolve of {} nodes: {best:?}", g.nodes.len());
}
