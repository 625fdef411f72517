//! Profiling aid: loads a graph directory repeatedly and prints the fastest run.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: prof_load GRAPH_DIR"));
    let mut best = std::time::Duration::MAX;
    let mut n = 0;
    for _ in 0..15 {
        let t0 = std::time::Instant::now();
        let g = spy_recipe::Graph::load(&dir, &[]).unwrap();
        best = best.min(t0.elapsed());
        n = g.nodes.len();
    }
    eprintln!("fastest load of {n} nodes: {best:?}");
}
