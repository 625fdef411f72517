//! Engine benchmarks, printed (never asserted: machines are shared and noisy).
//!
//! - load + resolve + hash of a synthetic graph of 10,000 nodes, in process (goal: <= 100 ms);
//! - `spy list` on that graph as a whole process, with its peak RSS;
//! - a no-op `spy realize` of a built target as a whole process (goal: <= 20 ms), with peak RSS.
//!
//! Run: `cargo bench --bench engine`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SPY: &str = env!("CARGO_BIN_EXE_spy");

// The allocator the spy executable runs the engine with (src/main.rs), so that the in-process
// figures are the executable's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
const NODES: usize = 10_000;

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A synthetic package set of `NODES` recipes, one file each, like real ones (pinned source, env,
/// three phases). `Shape::Layered` is package-set-like: 50 layers of 200 nodes, each depending on
/// three nodes of lower layers. `Shape::Chain` is the worst case for parallel hashing: node i
/// depends on i-1, i-7 and i-97, so the graph is 10,000 levels deep.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Layered,
    Chain,
}

fn synthetic_graph(dir: &Path, shape: Shape) {
    write(
        &dir.join("spy.toml"),
        "format = 1\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n",
    );
    for i in 0..NODES {
        let mut deps = Vec::new();
        match shape {
            Shape::Chain => {
                for k in [1usize, 7, 97] {
                    if i >= k {
                        deps.push(format!("\"n{}\"", i - k));
                    }
                }
            }
            Shape::Layered => {
                let layer = i / 200;
                if layer > 0 {
                    for k in 0..3 {
                        let below = (i * 7 + k * 13) % layer;
                        deps.push(format!("\"n{}\"", below * 200 + (i * 31 + k * 17) % 200));
                    }
                    deps.sort();
                    deps.dedup();
                }
            }
        }
        let text = format!(
            "name = \"n{i}\"\nversion = \"1.{i}\"\ndeps = [{}]\n[[sources]]\nurls = [\"https://example.org/n{i}.tar.gz\"]\nsha256 = \"{:064x}\"\n[env]\nCFLAGS = \"-O2\"\n[phases]\nconfigure = \"./configure --prefix=$out\"\nbuild = \"make\"\ninstall = \"make install\"\n",
            deps.join(", "),
            i
        );
        write(&dir.join(format!("{}/n{i}.toml", i % 100)), &text);
    }
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

/// Peak RSS of one run of a command, from GNU time.
fn peak_rss_kib(cmd: &mut Command) -> Option<u64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let mut t = Command::new(time);
    t.arg("-v").arg(cmd.get_program()).args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    let o = t.output().ok()?;
    String::from_utf8_lossy(&o.stderr).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Maximum resident set size (kbytes): ")
            .and_then(|v| v.parse().ok())
    })
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gdir = tmp.path().to_path_buf();
    for shape in [Shape::Chain, Shape::Layered] {
        gdir = tmp.path().join(format!("{shape:?}").to_lowercase()).join("graph");
        synthetic_graph(&gdir, shape);
        let (mut runs, mut loads, mut resolves) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..9 {
            let t0 = Instant::now();
            let g = spy_recipe::Graph::load(&gdir, &[]).unwrap();
            let t1 = Instant::now();
            let plan = spy_plan::resolve_all(&g, &mut spy_plan::ProbeCache::in_memory()).unwrap();
            assert_eq!(plan.len(), NODES);
            runs.push(t0.elapsed());
            loads.push(t1 - t0);
            resolves.push(t1.elapsed());
        }
        println!(
            "{shape:?} graph, {NODES} nodes, load + resolve + hash (in process, no recipe cache): {}",
            stats(runs)
        );
        println!("  of which load (read, parse, check, merge): {}", stats(loads));
        println!("  of which resolve + hash: {}", stats(resolves));

        // As spy loads a graph: with the store's recipe cache, recorded by a first load. The
        // files must be older than the cache's "racy" window to be recorded.
        std::thread::sleep(Duration::from_millis(2100));
        let mut cache = spy_recipe::RecipeCache::empty();
        spy_recipe::Graph::load_cached(&gdir, &[], &mut cache).unwrap();
        let saved = cache.updated().expect("a first load records the recipes").to_vec();
        let (mut runs, mut loads) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            let t0 = Instant::now();
            let mut cache = spy_recipe::RecipeCache::from_bytes(saved.clone());
            let g = spy_recipe::Graph::load_cached(&gdir, &[], &mut cache).unwrap();
            assert!(cache.updated().is_none(), "every recipe came from the cache");
            let t1 = Instant::now();
            let plan = spy_plan::resolve_all(&g, &mut spy_plan::ProbeCache::in_memory()).unwrap();
            assert_eq!(plan.len(), NODES);
            runs.push(t0.elapsed());
            loads.push(t1 - t0);
        }
        println!(
            "{shape:?} graph, {NODES} nodes, load + resolve + hash (in process, recipe cache of {:.1} MB): {}",
            saved.len() as f64 / 1e6,
            stats(runs)
        );
        println!("  of which load: {}", stats(loads));
    }

    // Whole process: `spy list` on the same graph.
    // (the layered graph)
    let store = tmp.path().join("store");
    let list = || {
        let mut c = Command::new(SPY);
        c.args(["list"])
            .env("SPY_GRAPH", &gdir)
            .env("SPY_STORE", &store)
            .stdout(std::process::Stdio::null());
        c
    };
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        assert!(list().status().unwrap().success());
        runs.push(t0.elapsed());
    }
    println!("`spy list`, {NODES} nodes (whole process): {}", stats(runs));
    if let Some(kib) = peak_rss_kib(&mut list()) {
        println!("`spy list`, {NODES} nodes: peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }

    // No-op realize of a built target.
    let p = tmp.path().join("noop");
    write(
        &p.join("graph/spy.toml"),
        "format = 1\nimplicit_deps = [\"stage0\"]\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n",
    );
    write(&p.join("graph/stage0.toml"), "name = \"stage0\"\nversion = \"host\"\nkind = \"bootstrap\"\ntools = [\"bash\", \"gcc\", \"make\", \"cp\", \"mkdir\", \"sed\", \"grep\", \"awk\"]\n");
    write(
        &p.join("graph/lib.toml"),
        "name = \"lib\"\nversion = \"1\"\n[phases]\ninstall = \"mkdir -p $out/lib && echo lib > $out/lib/x\"\n",
    );
    write(
        &p.join("graph/app.toml"),
        "name = \"app\"\nversion = \"1\"\ndeps = [\"lib\"]\n[phases]\ninstall = \"cp $lib/lib/x $out/\"\n",
    );
    let realize = || {
        let mut c = Command::new(SPY);
        c.args(["realize", "-q", "app"]).current_dir(&p).stdout(std::process::Stdio::null());
        c
    };
    let t0 = Instant::now();
    assert!(realize().status().unwrap().success());
    println!(
        "first realize of the fixture target (3 nodes, sandboxed): {:.1} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let mut runs = Vec::new();
    for _ in 0..30 {
        let t0 = Instant::now();
        assert!(realize().status().unwrap().success());
        runs.push(t0.elapsed());
    }
    println!("no-op `spy realize` of a built target (whole process): {}", stats(runs));
    if let Some(kib) = peak_rss_kib(&mut realize()) {
        println!("no-op `spy realize`: peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }
}
