//! `spy key`, `spy push`, `spy serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use spy_cache::{Compression, FileSignature, PublicKey, PushEvent, Pushed, SecretKey};

use crate::ctx::Ctx;

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Make an ed25519 key pair: NAME.secret (mode 0600) and NAME.public, in --out-dir.
    Generate {
        /// The key's name, part of every signature (e.g. `cache.example.org-1`).
        name: String,
        /// Where to write the two files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
    },
    /// Print the public key of a secret key file.
    Public { secret: PathBuf },
    /// Check a file's signature (FILE.sig, as `spy release --sign` writes) against a public key.
    Verify {
        /// The public key: `NAME:BASE64`, or a file holding it.
        #[arg(long, value_name = "KEY")]
        key: String,
        file: PathBuf,
        /// The signature file (default: FILE.sig).
        #[arg(long, value_name = "SIGFILE")]
        signature: Option<PathBuf>,
    },
}

pub fn key(cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Generate { name, out_dir } => {
            let key = SecretKey::generate(&name)?;
            let (secret, public) = key.write_pair(&out_dir)?;
            eprintln!("spy: wrote {} (keep it secret) and {}", secret.display(), public.display());
            println!("{}", key.public().to_text());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Public { secret } => {
            println!("{}", SecretKey::load(&secret)?.public().to_text());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Verify { key, file, signature } => {
            let public = PublicKey::from_arg(&key)?;
            let sig_path = signature.unwrap_or_else(|| PathBuf::from(format!("{}.sig", file.display())));
            match public.check_file(&file, &sig_path)? {
                FileSignature::Good => {
                    println!("{}: good signature by {}", file.display(), public.name);
                    Ok(ExitCode::SUCCESS)
                }
                FileSignature::Bad => bail!("{}: BAD signature: {} does not match this file", file.display(), sig_path.display()),
                FileSignature::OtherKey(by) => bail!("{}: signed by `{by}`, not by the key given (`{}`)", file.display(), public.name),
            }
        }
    }
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The cache: file:///DIR, or an http(s) URL that accepts PUT (WebDAV).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Sign the metadata with this secret key file.
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    /// Archive compression: zstd (fast) or xz (smaller, several times slower).
    #[arg(long, default_value = "zstd", value_name = "zstd|xz")]
    compression: Compression,
    /// Push only the named nodes, not their closures.
    #[arg(long)]
    no_closure: bool,
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
}

pub fn push(ctx: &mut Ctx, args: PushArgs) -> Result<ExitCode> {
    let key = args.sign.as_deref().map(SecretKey::load).transpose()?;
    let cache = spy_cache::open(&args.to)?;
    let keys = ctx.keys(&args.nodes)?;
    let (plan, roots) = ctx.plan(&keys)?;
    let t0 = Instant::now();
    let quiet = ctx.quiet;
    let sum = spy_cache::push_nodes(
        &ctx.store,
        &plan,
        &roots,
        !args.no_closure,
        cache.as_ref(),
        key.as_ref(),
        args.compression,
        |event| match event {
            _ if quiet => {}
            PushEvent::Skipped(node) => eprintln!("spy: skipping {node} (not in this store)"),
            PushEvent::Done {
                node,
                size,
                pushed: Pushed::Uploaded { archive_size },
                seconds,
            } => eprintln!(
                "spy: pushed {node} ({:.1} MB -> {:.1} MB in {seconds:.1}s)",
                size as f64 / 1e6,
                archive_size as f64 / 1e6
            ),
            PushEvent::Done {
                node,
                pushed: Pushed::Signed,
                ..
            } => eprintln!("spy: {node} was there; added the signature"),
            PushEvent::Done { .. } => {}
        },
    )?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "spy: pushed {} entr(ies) to {} ({:.1} MB packed to {:.1} MB, {:.1} MB/s), {} already there, in {secs:.1}s",
        sum.uploaded,
        args.to,
        sum.bytes_in as f64 / 1e6,
        sum.bytes_out as f64 / 1e6,
        if secs > 0.0 { sum.bytes_in as f64 / 1e6 / secs } else { 0.0 },
        sum.present
    );
    if key.is_none() && sum.uploaded > 0 {
        eprintln!("spy: warning: pushed unsigned: substituters refuse unsigned entries (push again with --sign KEYFILE)");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8377", value_name = "HOST:PORT")]
    addr: String,
    /// Sign the metadata served with this secret key file (clients refuse unsigned entries).
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    /// Archive compression: zstd (fast) or xz (smaller, several times slower).
    #[arg(long, default_value = "zstd", value_name = "zstd|xz")]
    compression: Compression,
    /// Where packed entries are kept between requests (default: the store's .spy/serve).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn serve(ctx: &Ctx, args: ServeArgs) -> Result<ExitCode> {
    let key = args.sign.as_deref().map(SecretKey::load).transpose()?;
    if key.is_none() {
        eprintln!("spy: warning: serving unsigned metadata: clients will refuse it (pass --sign KEYFILE)");
    }
    let cache_dir = match args.cache_dir {
        Some(d) => std::path::absolute(&d)?,
        None => ctx.store.scratch_dir(spy_store::Scratch::Serve)?,
    };
    fs_err::create_dir_all(&cache_dir)?;
    let store_root: &Path = ctx.store.root();
    let opts = spy_cache::serve::ServeOptions {
        addr: args.addr,
        key,
        compression: args.compression,
        cache_dir,
        threads: 8,
    };
    spy_cache::serve::serve(ctx.store.clone(), opts, |addr| {
        eprintln!("spy: serving {} read-only at http://{addr}/ (Ctrl-C to stop)", store_root.display());
    })?;
    Ok(ExitCode::SUCCESS)
}
