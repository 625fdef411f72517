use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use spy_plan::display_name;
use spy_store::{StoreName, VerifyOutcome};

use crate::ctx::{realize_options, Ctx};
use crate::{Cli, Command};

#[derive(clap::Args)]
pub struct RealizeArgs {
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// CPU budget for everything: parallel builds plus the `make` jobs inside them.
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Go on building what does not depend on a failed node.
    #[arg(short, long)]
    keep_going: bool,
    /// Build without the namespace sandbox (builds then see the whole host).
    #[arg(long)]
    no_sandbox: bool,
    /// Name of the result link (default `result`, or `result-NODE` for several nodes).
    #[arg(short, long, value_name = "PATH")]
    out_link: Option<PathBuf>,
    /// Leave no result link (and so no GC root).
    #[arg(long)]
    no_out_link: bool,
    /// Use only local origins for sources (and, with --with, only the lock file).
    #[arg(long)]
    offline: bool,
    /// Compile a PyPI package into the Python releases named (repeatable): `NAME` (the newest
    /// sdist for each release's Python) or `NAME==VERSION`. Resolved once and recorded in the lock
    /// file, then reused (docs/packages.md, "Packages from PyPI").
    #[arg(long = "with", value_name = "PKG")]
    with: Vec<String>,
    /// The lock file of --with (default: spy.lock beside the graph directory).
    #[arg(long, value_name = "FILE", requires = "with")]
    lock: Option<PathBuf>,
    /// Print the results as one JSON object (docs/json.md); progress stays on stderr.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Key { cmd } = cli.command {
        return crate::cache::key(cmd);
    }
    let mut ctx = Ctx::load(&cli)?;
    let code = run_command(&mut ctx, cli);
    // The process ends after this: the graph of a large package set is freed by the kernel at
    // once rather than node by node (nothing in a Ctx acts when dropped).
    std::mem::forget(ctx);
    code
}

fn run_command(ctx: &mut Ctx, cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Key { .. } => unreachable!("handled before loading"),
        Command::Push(args) => crate::cache::push(ctx, args),
        Command::Serve(args) => crate::cache::serve(ctx, args),
        Command::Check(args) => crate::check::check(ctx, args),
        Command::Release(args) => crate::check::release(ctx, args),
        Command::Realize(args) => realize(ctx, args),
        Command::Fetch { nodes, offline } => {
            let keys = ctx.keys(&nodes)?;
            let (plan, roots) = ctx.plan(&keys)?;
            let all = plan.closure(&roots);
            let ui = spy_sched::Progress::new(ctx.quiet);
            spy_sched::fetch_sources(
                &ctx.store,
                &plan,
                &all,
                &spy_fetch::FetchOptions {
                    mirrors: ctx.mirrors.clone(),
                    offline,
                },
                &ui,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { target, targets, json } => list(ctx, target, targets, json),
        Command::Show { node, json } => show(ctx, &node, json),
        Command::Path { node, json } => {
            let (plan, n) = ctx.one(&node)?;
            let name = plan.node(n).store_name();
            if json {
                let key = &plan.node(n).key;
                print_json(&serde_json::json!({
                    "node": display_name(&ctx.graph, key),
                    "key": key.to_string(),
                    "path": path_str(&ctx.store.entry(&name)),
                    "built": ctx.store.is_valid(&name),
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", ctx.store.entry(&name).display());
            if !ctx.store.is_valid(&name) && !ctx.quiet {
                eprintln!("spy: note: {} is not built yet (`spy realize {node}`)", plan.node(n).key);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Log { node } => {
            let (plan, n) = ctx.one(&node)?;
            let log = ctx.store.log_path(&plan.node(n).store_name());
            let mut f = std::fs::File::open(&log)
                .with_context(|| format!("no build log for {} (never built here?) at {}", plan.node(n).key, log.display()))?;
            std::io::copy(&mut f, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { node, format } => graph(ctx, &node, format),
        Command::WhyDepends { a, b } => {
            let keys = ctx.keys(&[a.clone(), b.clone()])?;
            let (plan, roots) = ctx.plan(&keys[..1])?;
            let Some(to) = plan.get(&keys[1]) else {
                println!("{} does not depend on {}", keys[0], keys[1]);
                return Ok(ExitCode::FAILURE);
            };
            match plan.why_depends(roots[0], to) {
                Some(path) => {
                    for (i, n) in path.iter().enumerate() {
                        println!("{}{}", "  ".repeat(i) + if i > 0 { "└─ " } else { "" }, plan.node(*n).key);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    println!("{} does not depend on {}", keys[0], keys[1]);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Gc { dry_run, json } => {
            let r = ctx.store.gc(dry_run)?;
            if json {
                print_json(&serde_json::json!({
                    "dry_run": dry_run,
                    "removed": r.removed.iter().map(|n| path_str(&ctx.store.root().join(n))).collect::<Vec<_>>(),
                    "freed_bytes": r.freed_bytes,
                    "live": r.live.len(),
                    "live_bytes": r.live_bytes,
                    "stale_roots": r.stale_roots.iter().map(|p| path_str(p)).collect::<Vec<_>>(),
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            for n in &r.removed {
                // Paths relative to the store root, as the store reports them.
                println!("{verb} {}", ctx.store.root().join(n).display());
            }
            eprintln!(
                "spy: {verb} {} entr(ies), {:.1} MiB; kept {} live entr(ies), {:.1} MiB; {} stale root(s)",
                r.removed.len(),
                r.freed_bytes as f64 / 1048576.0,
                r.live.len(),
                r.live_bytes as f64 / 1048576.0,
                r.stale_roots.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { nodes, json } => {
            let only = if nodes.is_empty() {
                None
            } else {
                let keys = ctx.keys(&nodes)?;
                let (plan, roots) = ctx.plan(&keys)?;
                Some(roots.iter().map(|&r| plan.node(r).store_name()).collect::<Vec<_>>())
            };
            let results = ctx.store.verify(only.as_deref())?;
            // A node asked for by name that has no entry has nothing to verify: say so and fail,
            // rather than report "0 problems" for it.
            if let Some(names) = &only {
                let unbuilt: Vec<&StoreName> = names.iter().filter(|n| !results.iter().any(|(m, _)| &m.store_name == *n)).collect();
                if !unbuilt.is_empty() {
                    let list: Vec<String> = unbuilt.iter().map(|n| n.to_string()).collect();
                    bail!("not built, nothing to verify: {} (`spy realize` builds it)", list.join(", "));
                }
            }
            // Each entry that failed: what is wrong and the detail, for the text and the JSON report.
            let problems: Vec<(&StoreName, &str, String)> = results
                .iter()
                .filter_map(|(m, o)| match o {
                    VerifyOutcome::Ok => None,
                    VerifyOutcome::Mismatch { expected, actual } => {
                        Some((&m.store_name, "modified", format!("recorded {expected}, now {actual}")))
                    }
                    VerifyOutcome::Missing => Some((&m.store_name, "missing", String::new())),
                    VerifyOutcome::Error(e) => Some((&m.store_name, "error", e.clone())),
                })
                .collect();
            let status = if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
            if json {
                let problems: Vec<serde_json::Value> = problems
                    .iter()
                    .map(|(name, problem, detail)| {
                        serde_json::json!({ "path": path_str(&ctx.store.entry(name)), "problem": problem, "detail": detail })
                    })
                    .collect();
                print_json(&serde_json::json!({ "entries": results.len(), "problems": problems }))?;
                return Ok(status);
            }
            for (name, problem, detail) in &problems {
                match *problem {
                    "modified" => println!("MODIFIED {} ({detail})", ctx.store.entry(name).display()),
                    "missing" => println!("MISSING {}", ctx.store.entry(name).display()),
                    _ => println!("ERROR {name}: {detail}"),
                }
            }
            eprintln!("spy: verified {} entr(ies), {} problem(s)", results.len(), problems.len());
            Ok(status)
        }
        Command::AddSource { files } => {
            for f in files {
                let (sha, _) = spy_fetch::add_file(&ctx.store, &f).with_context(|| format!("adding {}", f.display()))?;
                let users = ctx.graph.nodes_pinning(&sha.to_hex());
                println!("{sha}  {}", f.display());
                if users.is_empty() && !ctx.quiet {
                    eprintln!("spy: note: no recipe pins sha256 {sha}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox { .. } => unreachable!("handled before loading"),
    }
}

fn realize(ctx: &mut Ctx, args: RealizeArgs) -> Result<ExitCode> {
    let keys = ctx.keys(&args.nodes)?;
    if !args.with.is_empty() {
        let roots: Vec<(String, String)> = keys.iter().map(|k| (k.name.clone(), k.target.clone())).collect();
        let quiet = ctx.quiet;
        let log = |m: &str| {
            if !quiet {
                eprintln!("spy: {m}");
            }
        };
        let opts = spy_with::Options {
            lock: args.lock.clone().unwrap_or_else(|| spy_with::default_lock_path(&ctx.graph.root)),
            offline: args.offline,
            log: &log,
        };
        spy_with::apply(&mut ctx.graph, &ctx.store, &roots, &args.with, &opts)?;
    }
    let (plan, roots) = ctx.plan(&keys)?;
    let mut opts = realize_options(ctx, args.jobs, args.no_sandbox, args.offline)?;
    opts.keep_going = args.keep_going;
    let _temp_roots = spy_sched::realize_rooted(&ctx.store, &plan, &roots, &opts, &spy_sched::Progress::new(ctx.quiet))?;
    let names: Vec<String> = keys.iter().map(|k| display_name(&ctx.graph, k)).collect();
    let links = spy_plan::result_links(args.out_link.as_deref(), &names);
    let mut results = Vec::new();
    for ((&r, link), node) in roots.iter().zip(&links).zip(&names) {
        let name = plan.node(r).store_name();
        if !args.json {
            println!("{}", ctx.store.entry(&name).display());
        }
        let link = (!args.no_out_link).then_some(link);
        if let Some(link) = link {
            ctx.store
                .add_root(link, &name)
                .with_context(|| format!("creating the result link {}", link.display()))?;
        }
        results.push(serde_json::json!({
            "node": node,
            "key": plan.node(r).key.to_string(),
            "path": path_str(&ctx.store.entry(&name)),
            "link": link.map(|l| path_str(l)),
        }));
    }
    if args.json {
        print_json(&serde_json::json!({ "results": results }))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &mut Ctx, only_target: Option<String>, targets: bool, json: bool) -> Result<ExitCode> {
    if targets && json {
        let list: Vec<serde_json::Value> = ctx
            .graph
            .config
            .targets
            .iter()
            .map(|(t, c)| serde_json::json!({ "target": t.as_str(), "short": c.short, "description": c.description }))
            .collect();
        print_json(&serde_json::json!(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    if targets {
        for (t, c) in &ctx.graph.config.targets {
            println!("{:<24} {:<10} {}", t, c.short, c.description);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(t) = &only_target {
        if !ctx.graph.config.targets.contains_key(t.as_str()) {
            bail!(
                "unknown target `{t}` (known: {})",
                ctx.graph.config.targets.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let plan = spy_plan::resolve_all(&ctx.graph, &mut ctx.probes)?;
    ctx.probes.save();
    // Each node with the name it is listed by, made once.
    let mut nodes: Vec<(String, &spy_plan::PlanNode)> = plan
        .dag
        .node_indices()
        .map(|i| plan.node(i))
        .filter(|n| only_target.as_ref().is_none_or(|t| &n.key.target == t))
        .map(|n| (display_name(&ctx.graph, &n.key), n))
        .collect();
    // Stable: nodes of equal names (a `-` in a target's short name can make two) keep the plan's
    // order, as they always had.
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    use serde::ser::{SerializeSeq, Serializer};
    use std::io::Write;
    // One read of the metadata directory; the names found there are checked in full. Unreadable:
    // each name is checked.
    let present: Option<std::collections::HashSet<_>> = ctx.store.meta_names().ok().map(|v| v.into_iter().collect());
    let built = |name: &spy_store::StoreName| present.as_ref().is_none_or(|p| p.contains(name)) && ctx.store.is_valid(name);
    // Buffered: stdout is line-buffered, and 10,000 rows were 10,000 writes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        // Streamed, one node at a time, in the layout of the whole array pretty-printed: an array
        // of 10,000 values was most of the command's peak memory.
        let mut ser = serde_json::Serializer::pretty(&mut out);
        let mut seq = (&mut ser).serialize_seq(Some(nodes.len()))?;
        for (node, n) in &nodes {
            let name = n.store_name();
            seq.serialize_element(&serde_json::json!({
                "node": node,
                "key": n.key.to_string(),
                "name": n.key.name,
                "target": n.key.target,
                "version": n.version,
                "kind": n.kind.as_str(),
                "built": built(&name),
                "path": path_str(&ctx.store.entry(&name)),
            }))?;
        }
        seq.end()?;
        writeln!(out)?;
    } else {
        if std::io::stdout().is_terminal() {
            writeln!(out, "{:<36} {:<14} {:<10} STATE", "NODE", "VERSION", "KIND")?;
        }
        // The columns of `{:<36} {:<14} {:<10} {}`, padded here: std's formatter pads a
        // character at a time, which was most of the time 10,000 rows took.
        let mut line = Vec::with_capacity(128);
        for (node, n) in &nodes {
            let state = if built(&n.store_name()) { "built" } else { "-" };
            line.clear();
            for (text, width) in [(node.as_str(), 36), (n.version.as_str(), 14), (n.kind.as_str(), 10usize)] {
                line.extend_from_slice(text.as_bytes());
                line.resize(line.len() + width.saturating_sub(text.chars().count()), b' ');
                line.push(b' ');
            }
            line.extend_from_slice(state.as_bytes());
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    out.flush()?;
    drop(nodes);
    // The process ends here: freeing the plan of a large graph node by node is time for nothing.
    std::mem::forget(plan);
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &mut Ctx, spec: &str, json: bool) -> Result<ExitCode> {
    let (plan, n) = ctx.one(spec)?;
    let node = plan.node(n);
    let name = node.store_name();
    let meta = ctx.store.lookup(&name)?;
    if json {
        let mut v = node_json(ctx, &plan, n);
        v["node"] = display_name(&ctx.graph, &node.key).into();
        v["description"] = node.description.clone().into();
        v["license"] = node.license.clone().into();
        v["recipe"] = path_str(&node.file).into();
        v["state"] = match &meta {
            Some(m) => serde_json::json!({
                "files": m.files,
                "size": m.size,
                "tree_hash": m.tree_hash.to_string(),
                "build_seconds": m.build_seconds,
                "sandboxed": m.sandboxed,
            }),
            None => serde_json::Value::Null,
        };
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("node:        {} ({})", node.key, display_name(&ctx.graph, &node.key));
    println!("version:     {}", node.version);
    println!("kind:        {}", node.kind.as_str());
    if !node.description.is_empty() {
        println!("description: {}", node.description);
    }
    if !node.license.is_empty() {
        println!("license:     {}", node.license);
    }
    println!("recipe:      {}", node.file.display());
    println!("id:          {}", node.id);
    println!("path:        {}", ctx.store.entry(&name).display());
    match &meta {
        Some(m) => println!(
            "state:       built ({} files, {} bytes, output hash {}, built in {:.1}s{})",
            m.files,
            m.size,
            m.tree_hash,
            m.build_seconds,
            if m.sandboxed { "" } else { ", unsandboxed" }
        ),
        None => println!("state:       not built"),
    }
    for &d in &node.deps {
        println!("dependency:  {} {}", plan.node(d).key, plan.node(d).id.short(16));
    }
    for s in &node.sources {
        let cached = if s.cached_in(&ctx.store).is_some() {
            "cached"
        } else {
            "not fetched"
        };
        println!("source:      {} ({}, {cached})", s.file, s.pin);
        for u in &s.urls {
            println!("               url {u}");
        }
        if let Some(d) = &s.debian {
            println!("               debian source package {d}");
        }
        if let Some(p) = &s.pypi {
            println!("               pypi sdist {p}");
        }
    }
    for p in &node.patches {
        println!("patch:       {} (blake3 {})", p.name, p.blake3.short(16));
    }
    for (k, v) in &node.env {
        println!("env:         {k}={v}");
    }
    for (p, body) in &node.phases {
        println!("phase {}: {} line(s)", p.as_str(), body.lines().count());
    }
    for t in &node.tools {
        println!("host tool:   {:<10} {:<24} {}", t.name, t.path, t.version);
    }
    Ok(ExitCode::SUCCESS)
}

fn graph(ctx: &mut Ctx, spec: &str, format: GraphFormat) -> Result<ExitCode> {
    let (plan, root) = ctx.one(spec)?;
    let nodes = plan.closure(&[root]);
    match format {
        GraphFormat::Dot => {
            println!("digraph spy {{\n  rankdir=LR;\n  node [shape=box];");
            for &n in &nodes {
                let node = plan.node(n);
                let built = ctx.store.is_valid(&node.store_name());
                println!(
                    "  \"{}\" [label=\"{}\\n{}\"{}];",
                    node.key,
                    node.key.name,
                    node.version,
                    if built { "" } else { ", style=dashed" }
                );
                for &d in &node.deps {
                    println!("  \"{}\" -> \"{}\";", node.key, plan.node(d).key);
                }
            }
            println!("}}");
        }
        GraphFormat::Json => {
            let list: Vec<serde_json::Value> = nodes.iter().map(|&n| node_json(ctx, &plan, n)).collect();
            print_json(&serde_json::json!({ "root": plan.node(root).key.to_string(), "nodes": list }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A node as `graph --format json` and `show --json` print it (docs/json.md).
fn node_json(ctx: &Ctx, plan: &spy_plan::Plan, n: petgraph::graph::NodeIndex) -> serde_json::Value {
    let node = plan.node(n);
    serde_json::json!({
        "key": node.key.to_string(),
        "name": node.key.name,
        "target": node.key.target,
        "version": node.version,
        "kind": node.kind.as_str(),
        "id": node.id.to_hex(),
        "path": path_str(&ctx.store.entry(&node.store_name())),
        "built": ctx.store.is_valid(&node.store_name()),
        "deps": node.deps.iter().map(|&d| plan.node(d).key.to_string()).collect::<Vec<_>>(),
        "var": node.var_name(),
        "env": node.env,
        "phases": node.phases.iter().map(|(p, body)| (p.as_str(), body)).collect::<std::collections::BTreeMap<_, _>>(),
        "sources": node.sources.iter().map(|s| serde_json::json!({
            "file": s.file,
            "pin": s.pin.to_string(),
            "var": s.var,
            "unpack": s.unpack,
            "cached": s.cached_in(&ctx.store).map(|p| path_str(&p)),
        })).collect::<Vec<_>>(),
        "patches": node.patches.iter().map(|p| path_str(&p.path)).collect::<Vec<_>>(),
        "tools": node.tools,
    })
}

/// A path as JSON shows it: serde refuses paths that are not UTF-8 (a store under such a
/// directory), which `json!` would turn into a panic; those are shown lossily.
fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One JSON document on stdout, pretty-printed, ending with a newline.
fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
