fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let g = spy_recipe::Graph::load(&dir, &[]).unwrap();
        let t1 = t0.elapsed();
        let mut texts = Vec::new();
        let t2 = std::time::Instant::now();
        for n in g.nodes.values() {
            texts.push(std::fs::read_to_string(&n.file).unwrap());
        }
        let read = t2.elapsed();
        let t3 = std::time::Instant::now();
        for t in &texts {
            let p: spy_recipe::PartialRecipe = toml::from_str(t).unwrap();
            std::hint::black_box(p);
        }
        eprintln!("load {:?}; sequential read {:?}; sequential parse {:?}", t1, read, t3.elapsed());
    }
}
