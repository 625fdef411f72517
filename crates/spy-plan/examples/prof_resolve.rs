fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let g = spy_recipe::Graph::load(&dir, &[]).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..10 {
        let p = spy_plan::resolve_all(&g, &mut spy_plan::ProbeCache::in_memory()).unwrap();
        std::hint::black_box(p);
    }
    eprintln!("{:?} per resolve", t0.elapsed() / 10);
}
