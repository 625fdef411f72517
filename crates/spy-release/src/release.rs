//! `spy release`: the files of a release. For each fuse node, its binaries (`bin/*`) and, beside
//! each, its manifest (`<binary>.manifest.json`), its CycloneDX SBOM (`<binary>.cdx.json`) and the
//! archives `<binary>.tar.gz` and `<binary>.tar.zst` of the three (`archive.rs`); then
//! `SHA256SUMS` over every file written and, with a key, `SHA256SUMS.sig`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;
use spy_cache::SecretKey;
use spy_plan::{Kind, Plan};
use spy_sched::{Progress, RealizeOptions, SchedError};
use spy_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{node} is not a release: `spy release` takes fuse nodes such as python3.11-x86_64 (`spy list` marks them `fuse`)")]
    NotARelease { node: String },
    #[error(transparent)]
    Sched(#[from] SchedError),
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Hash(#[from] spy_hash::HashError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |e| ReleaseError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What a release wrote.
#[derive(Debug)]
pub struct Released {
    /// File names in the release directory, sorted.
    pub files: Vec<String>,
    pub sums: PathBuf,
    pub signature: Option<PathBuf>,
}

/// Realizes the fuse nodes `roots` and writes their release files into `out` (created if needed;
/// files of the same names are replaced), signed with `key` if given.
pub fn release(
    store: &Store,
    plan: &Plan,
    roots: &[NodeIndex],
    opts: &RealizeOptions,
    quiet: bool,
    out: &Path,
    key: Option<&SecretKey>,
) -> Result<Released, ReleaseError> {
    releasable(plan, roots)?;
    let _temp_roots = spy_sched::realize_rooted(store, plan, roots, opts, &Progress::new(quiet))?;
    fs_err::create_dir_all(out).map_err(io(out))?;
    let mut files: Vec<String> = Vec::new();
    for &r in roots {
        files.extend(release_files(&store.entry(&plan.node(r).store_name()), out)?);
    }
    files.sort();
    write_sums(out, files, key)
}

/// Refuses nodes that are not releases (fuse nodes).
pub fn releasable(plan: &Plan, roots: &[NodeIndex]) -> Result<(), ReleaseError> {
    match roots.iter().find(|&&r| plan.node(r).kind != Kind::Fuse) {
        Some(&r) => Err(ReleaseError::NotARelease {
            node: plan.node(r).key.to_string(),
        }),
        None => Ok(()),
    }
}

/// Copies a fuse entry's binaries and manifest into `out`, with each binary's SBOM and archives;
/// returns the file names written.
pub fn release_files(entry: &Path, out: &Path) -> Result<Vec<String>, ReleaseError> {
    let mut written = Vec::new();
    let bin = entry.join("bin");
    let mut binaries: Vec<PathBuf> = fs_err::read_dir(&bin).map_err(io(&bin))?.flatten().map(|e| e.path()).collect();
    binaries.sort();
    // One manifest per entry, read once for all its binaries.
    let manifest = entry.join("manifest.json");
    let parsed: Option<serde_json::Value> = if manifest.is_file() {
        let text = fs_err::read_to_string(&manifest).map_err(io(&manifest))?;
        Some(serde_json::from_str(&text).map_err(|e| ReleaseError::Io {
            path: manifest.clone(),
            message: format!("not a manifest: {e}"),
        })?)
    } else {
        None
    };
    for b in binaries {
        let Some(name) = b.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        copy_replacing(&b, &out.join(&name), 0o755)?;
        written.push(name.clone());
        let Some(parsed) = &parsed else { continue };
        let m = format!("{name}.manifest.json");
        copy_replacing(&manifest, &out.join(&m), 0o644)?;
        written.push(m.clone());
        let bom = crate::archive::cyclonedx(&name, parsed).map_err(|message| ReleaseError::Io {
            path: manifest.clone(),
            message,
        })?;
        let sbom = format!("{name}.cdx.json");
        let sbom_path = out.join(&sbom);
        crate::archive::replace_with(&sbom_path, |mut w| {
            serde_json::to_writer_pretty(&mut w, &bom)?;
            w.write_all(b"\n")?;
            Ok(w)
        })
        .map_err(io(&sbom_path))?;
        written.push(sbom);
        let archives = crate::archive::write_archives(out, &name, &out.join(&name), &out.join(&m), &sbom_path).map_err(io(out))?;
        written.extend(archives);
    }
    Ok(written)
}

/// Writes `SHA256SUMS` over `files` (names in `out`, in this order) and, with `key`, its
/// signature `SHA256SUMS.sig`.
pub fn write_sums(out: &Path, files: Vec<String>, key: Option<&SecretKey>) -> Result<Released, ReleaseError> {
    let mut sums = String::new();
    for f in &files {
        let sha = spy_hash::sha256_file(&out.join(f))?;
        sums.push_str(&format!("{sha}  {f}\n"));
    }
    let sums_path = out.join("SHA256SUMS");
    fs_err::write(&sums_path, &sums).map_err(io(&sums_path))?;
    let signature = match key {
        Some(k) => {
            let p = out.join("SHA256SUMS.sig");
            fs_err::write(&p, format!("{}\n", k.sign(sums.as_bytes()))).map_err(io(&p))?;
            Some(p)
        }
        None => None,
    };
    Ok(Released {
        files,
        sums: sums_path,
        signature,
    })
}

/// Replaces `to` by a copy of `from` with `mode`, through a temporary file beside it.
fn copy_replacing(from: &Path, to: &Path, mode: u32) -> Result<(), ReleaseError> {
    crate::archive::replace_with(to, |mut w| {
        std::io::copy(&mut std::fs::File::open(from)?, &mut w)?;
        w.get_ref().set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(w)
    })
    .map_err(io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_files_are_copied_summed_and_signed() {
        let (_d, entry, out) = crate::scratch("entry", "out");
        std::fs::create_dir_all(entry.join("bin")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(entry.join("bin/python3.11-x86_64"), "ELF").unwrap();
        std::fs::set_permissions(entry.join("bin/python3.11-x86_64"), std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::write(
            entry.join("manifest.json"),
            format!("{{\"binary\": {{\"sha256\": \"{}\"}}}}\n", "a".repeat(64)),
        )
        .unwrap();
        // An older release file of the same name is replaced, read-only or not.
        std::fs::write(out.join("python3.11-x86_64"), "old").unwrap();
        std::fs::set_permissions(out.join("python3.11-x86_64"), std::fs::Permissions::from_mode(0o444)).unwrap();
        let files = release_files(&entry, &out).unwrap();
        assert_eq!(
            files,
            [
                "python3.11-x86_64",
                "python3.11-x86_64.manifest.json",
                "python3.11-x86_64.cdx.json",
                "python3.11-x86_64.tar.gz",
                "python3.11-x86_64.tar.zst"
            ]
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(std::fs::read_to_string(out.join("python3.11-x86_64")).unwrap(), "ELF");
        assert_eq!((mode(&out.join(&files[0])), mode(&out.join(&files[1]))), (0o755, 0o644));

        let key = SecretKey::generate("test-1").unwrap();
        let r = write_sums(&out, files, Some(&key)).unwrap();
        let sums = std::fs::read_to_string(&r.sums).unwrap();
        let elf_sha = spy_hash::sha256_file(&out.join("python3.11-x86_64")).unwrap();
        assert!(sums.starts_with(&format!("{elf_sha}  python3.11-x86_64\n")), "{sums}");
        assert_eq!(sums.lines().count(), 5);
        let sig = std::fs::read_to_string(r.signature.unwrap()).unwrap();
        assert_eq!(key.public().verify(sums.as_bytes(), sig.trim()), Some(true));
        assert!(write_sums(&out, vec![], None).unwrap().signature.is_none());
    }
}
