//! `spy check` (rebuild in a fresh store at another path and compare) and `spy release` (the
//! files of a release: binaries, manifests, SHA256SUMS and its signature): arguments and the
//! report; the work is spy-release's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::ctx::{realize_options, Ctx};

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
    let opts = realize_options(ctx, args.jobs, false, false)?;
    let checked = spy_release::check(&ctx.store, &plan, &roots, args.closure, &opts, ctx.quiet)?;
    for d in &checked.differing {
        let node = plan.node(d.node);
        println!("DIFFERS {} ({})", node.key, node.store_name());
        println!("  {}: tree hash {}", d.ours.0.display(), d.ours.1);
        println!("  {}: tree hash {}", d.theirs.0.display(), d.theirs.1);
        for f in d.files.iter().take(args.max_files) {
            println!("  file {}: {} / {}", f.path.display(), f.ours, f.theirs);
        }
        if d.files.len() > args.max_files {
            println!("  ... and {} more differing path(s)", d.files.len() - args.max_files);
        }
        if let Some(f) = d.first_file() {
            match spy_release::diffoscope(&d.ours.0.join(&f.path), &d.theirs.0.join(&f.path)) {
                Some(lines) => {
                    println!("  diffoscope:");
                    for l in lines {
                        println!("    {l}");
                    }
                }
                None => println!("  (install diffoscope for a detailed comparison)"),
            }
        }
    }
    let rebuilt = checked.rebuilt.len();
    if checked.differing.is_empty() {
        eprintln!("spy: check: {rebuilt} node(s) rebuilt, all bit-for-bit identical");
        if args.keep {
            eprintln!("spy: kept the fresh store at {}", checked.keep().display());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        let names: Vec<String> = checked.differing.iter().map(|d| plan.node(d.node).key.to_string()).collect();
        eprintln!(
            "spy: check: {} of {rebuilt} node(s) differ when rebuilt: {}",
            names.len(),
            names.join(", ")
        );
        eprintln!(
            "spy: the rebuilt outputs are kept in {} (remove it when done)",
            checked.keep().display()
        );
        Ok(ExitCode::FAILURE)
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
    spy_release::releasable(&plan, &roots)?;
    let opts = realize_options(ctx, args.jobs, false, false)?;
    let released = spy_release::release(&ctx.store, &plan, &roots, &opts, ctx.quiet, &args.out, key.as_ref())?;
    println!("{}", released.sums.display());
    if let (Some(sig), Some(k)) = (&released.signature, &key) {
        println!("{}", sig.display());
        eprintln!(
            "spy: signed by {}; verify with `sha256sum -c SHA256SUMS` and `spy key verify --key {} SHA256SUMS`",
            k.name,
            k.public().to_text()
        );
    }
    Ok(ExitCode::SUCCESS)
}
