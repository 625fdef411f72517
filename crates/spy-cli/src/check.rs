//! `spy check` (rebuild in a fresh store at another path and compare) and `spy release` (the
//! files of a release: binaries, manifests, SHA256SUMS and its signature).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use petgraph::graph::NodeIndex;
use spy_plan::Plan;
use spy_recipe::Kind;
use spy_store::Store;

use crate::commands::{realize_in_store, realize_options, Ctx};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// Rebuild every node of the closures too, not only the named ones.
    #[arg(long)]
    closure: bool,
    /// Keep the fresh store afterwards (it is kept anyway when outputs differ).
    #[arg(long)]
    keep: bool,
    /// CPU budget, as for realize.
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// How many differing files to name per node.
    #[arg(long, default_value_t = 10, value_name = "N")]
    max_files: usize,
}

pub fn check(ctx: &mut Ctx, args: CheckArgs) -> Result<ExitCode> {
    let keys = ctx.keys(&args.nodes)?;
    let (plan, roots) = ctx.plan(&keys)?;
    // The reference outputs: whatever the store has, realized (substituted or built) if missing.
    let mut opts = realize_options(ctx, args.jobs, false, false)?;
    let _temp_roots = realize_in_store(ctx, &plan, &roots, &opts)?;
    let ui = spy_sched::Progress::new(ctx.quiet);

    let rebuild: Vec<NodeIndex> = if args.closure {
        plan.closure(&roots)
            .into_iter()
            .filter(|&n| !plan.node(n).is_host_specific())
            .collect()
    } else {
        roots.clone()
    };
    // A fresh store beside the main one (same filesystem, so inputs are hard links), at a path no
    // earlier build saw.
    let check_parent = ctx.store.scratch_dir(spy_store::Scratch::Check)?;
    let check_dir = tempfile::Builder::new().prefix("check-").tempdir_in(&check_parent)?;
    let fresh = Store::open(&check_dir.path().join("store"))?;
    fresh.link_sources_from(&ctx.store)?;
    for n in plan.closure(&roots) {
        if rebuild.contains(&n) {
            continue;
        }
        let name = plan.node(n).store_name();
        // Inputs of what is rebuilt (and only those) must be present.
        if let Some(meta) = ctx.store.lookup(&name)? {
            fresh.link_entry_from(&ctx.store, &meta)?;
        }
    }
    ui.line(&format!(
        "rebuilding {} node(s) in {} to compare with {}",
        rebuild.len(),
        fresh.root().display(),
        ctx.store.root().display()
    ));
    opts.substituters = None;
    spy_sched::realize(&fresh, &plan, &roots, &opts, &ui)?;

    let mut differing = Vec::new();
    for &n in &rebuild {
        let node = plan.node(n);
        let name = node.store_name();
        let (Some(a), Some(b)) = (ctx.store.lookup(&name)?, fresh.lookup(&name)?) else {
            bail!("{} is missing from one of the stores after realizing it", node.key);
        };
        if a.tree_hash == b.tree_hash {
            continue;
        }
        differing.push(n);
        println!("DIFFERS {} ({})", node.key, name);
        println!("  {}: tree hash {}", ctx.store.entry(&name).display(), a.tree_hash);
        println!("  {}: tree hash {}", fresh.entry(&name).display(), b.tree_hash);
        let files = differing_files(&ctx.store.entry(&name), &fresh.entry(&name))?;
        for (path, x, y) in files.iter().take(args.max_files) {
            println!("  file {}: {x} / {y}", path.display());
        }
        if files.len() > args.max_files {
            println!("  ... and {} more differing path(s)", files.len() - args.max_files);
        }
        if let Some((path, _, _)) = files
            .iter()
            .find(|(_, x, y)| x.starts_with("file") || y.starts_with("file") || x.starts_with("exec"))
        {
            diffoscope(&ctx.store.entry(&name).join(path), &fresh.entry(&name).join(path));
        }
    }
    let same = rebuild.len() - differing.len();
    if differing.is_empty() {
        eprintln!("spy: check: {same} node(s) rebuilt, all bit-for-bit identical");
        if args.keep {
            eprintln!("spy: kept the fresh store at {}", check_dir.keep().display());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        let kept = check_dir.keep();
        eprintln!(
            "spy: check: {} of {} node(s) differ when rebuilt: {}",
            differing.len(),
            rebuild.len(),
            differing
                .iter()
                .map(|&n| plan.node(n).key.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        eprintln!("spy: the rebuilt outputs are kept in {} (remove it when done)", kept.display());
        Ok(ExitCode::FAILURE)
    }
}

/// Paths whose kind or content differ between two trees, with what each side has.
fn differing_files(a: &Path, b: &Path) -> Result<Vec<(PathBuf, String, String)>> {
    let (la, lb) = (spy_hash::tree_listing(a)?, spy_hash::tree_listing(b)?);
    let mut out = Vec::new();
    let all: std::collections::BTreeSet<&PathBuf> = la.keys().chain(lb.keys()).collect();
    for p in all {
        let (x, y) = (la.get(p), lb.get(p));
        if x != y && x.map(String::as_str) != Some("dir") {
            out.push((
                p.clone(),
                x.cloned().unwrap_or_else(|| "absent".into()),
                y.cloned().unwrap_or_else(|| "absent".into()),
            ));
        }
    }
    Ok(out)
}

/// The first lines of diffoscope's report on two files, when diffoscope is installed.
fn diffoscope(a: &Path, b: &Path) {
    let out = std::process::Command::new("diffoscope")
        .args(["--no-progress", "--text", "-", "--max-report-size", "200000"])
        .arg(a)
        .arg(b)
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            println!("  diffoscope:");
            for l in text.lines().take(40) {
                println!("    {l}");
            }
        }
        Err(_) => println!("  (install diffoscope for a detailed comparison)"),
    }
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    /// Release (fuse) nodes, e.g. python3.11-x86_64.
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// The directory to write (created if needed; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Sign SHA256SUMS with this secret key file (writes SHA256SUMS.sig).
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
}

pub fn release(ctx: &mut Ctx, args: ReleaseArgs) -> Result<ExitCode> {
    let key = args.sign.as_deref().map(spy_cache::SecretKey::load).transpose()?;
    let keys = ctx.keys(&args.nodes)?;
    let (plan, roots) = ctx.plan(&keys)?;
    for &r in &roots {
        if plan.node(r).kind != Kind::Fuse {
            bail!(
                "{} is not a release: `spy release` takes fuse nodes such as python3.11-x86_64 (`spy list` marks them `fuse`)",
                plan.node(r).key
            );
        }
    }
    let opts = realize_options(ctx, args.jobs, false, false)?;
    let _temp_roots = realize_in_store(ctx, &plan, &roots, &opts)?;
    fs_err::create_dir_all(&args.out)?;
    let mut written: Vec<String> = Vec::new();
    for &r in &roots {
        written.extend(release_files(&ctx.store, &plan, r, &args.out)?);
    }
    written.sort();
    let mut sums = String::new();
    for f in &written {
        let sha = spy_hash::sha256_file(&args.out.join(f))?;
        sums.push_str(&format!("{sha}  {f}\n"));
    }
    fs_err::write(args.out.join("SHA256SUMS"), &sums)?;
    println!("{}", args.out.join("SHA256SUMS").display());
    if let Some(k) = &key {
        fs_err::write(args.out.join("SHA256SUMS.sig"), format!("{}\n", k.sign(sums.as_bytes())))?;
        println!("{}", args.out.join("SHA256SUMS.sig").display());
        eprintln!(
            "spy: signed by {}; verify with `sha256sum -c SHA256SUMS` and `spy key verify --key {} SHA256SUMS`",
            k.name,
            k.public().to_text()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies a fuse node's binary and manifest into `out`; returns the file names written.
fn release_files(store: &Store, plan: &Plan, n: NodeIndex, out: &Path) -> Result<Vec<String>> {
    let entry = store.entry(&plan.node(n).store_name());
    let mut written = Vec::new();
    let bin = entry.join("bin");
    let mut binaries: Vec<PathBuf> = fs_err::read_dir(&bin)?.flatten().map(|e| e.path()).collect();
    binaries.sort();
    for b in binaries {
        let name = b.file_name().context("binary name")?.to_string_lossy().into_owned();
        copy_replacing(&b, &out.join(&name), 0o755)?;
        written.push(name.clone());
        let manifest = entry.join("manifest.json");
        if manifest.is_file() {
            let m = format!("{name}.manifest.json");
            copy_replacing(&manifest, &out.join(&m), 0o644)?;
            written.push(m);
        }
    }
    Ok(written)
}

fn copy_replacing(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = to.with_extension("spy-tmp");
    let _ = std::fs::remove_file(&tmp);
    fs_err::copy(from, &tmp)?;
    fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    fs_err::rename(&tmp, to)?;
    Ok(())
}
