//! The fuse node kind ([`Fuser`], its realizer): turns an interpreter node into one self-contained
//! executable, in-process. It reads store entries and writes only the transaction's output and
//! log. The output is
//! `bin/<release>`, the interpreter's executable with its standard library appended as a ZIP (the
//! interpreter finds it in its own file), and `manifest.json`, an SBOM of what went into it.
//!
//! The ZIP ([`zipout`]) is written straight after the executable with offsets counted from the
//! start of the file (what `zip -A` would make), so `unzip`, Python's `zipfile` and `zipimport` all
//! read it (but for the members of `solid-zstd` blocks, which only the single-file zipimport reads).
//! Members are sorted, dated 1980-01-01 and 0644: the same inputs give the same bytes.
//!
//! A Mach-O executable (darwin) cannot carry data after its end: there the ZIP goes inside
//! `__LINKEDIT`, before a new ad-hoc code signature over the whole file ([`macho`]).
//!
//! Any change to what this crate writes must bump [`FUSE_VERSION`] (`src/version.rs`), which is
//! part of every fuse node's id (otherwise stores keep serving the old output).

use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;
use serde::Serialize;
use spy_plan::{Plan, PlanNode, Realizer, SourcePin};
use spy_recipe::{FuseSpec, ZipCompression};
use spy_store::{Origin, Store, Work};

#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error("{node}: {}: {message}", path.display())]
    Io { node: String, path: PathBuf, message: String },
    #[error("{node}: {message}")]
    Invalid { node: String, message: String },
    #[error("{node}: {}: {source}", path.display())]
    MachO {
        node: String,
        path: PathBuf,
        source: macho::MachOError,
    },
}

pub mod macho;
mod version;
pub mod zipout;

pub use version::FUSE_VERSION;

/// What a fuse produced (for the log and the caller).
#[derive(Debug, Clone)]
pub struct FuseReport {
    pub binary: PathBuf,
    pub executable_size: u64,
    pub zip_entries: usize,
    pub binary_size: u64,
    pub sha256: String,
    /// Mach-O: the ad-hoc code signature written after the ZIP.
    pub code_signature: Option<macho::Signed>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: u32,
    release: &'a str,
    node: NodeRef<'a>,
    target: &'a str,
    flavor: &'a str,
    interpreter: Interpreter<'a>,
    /// The binary's licence: every licence of what went into it (see [`binary_license`]).
    license: String,
    binary: Binary<'a>,
    modules: serde_json::Value,
    components: Vec<Component>,
    build_tools: Vec<Tool<'a>>,
}

#[derive(Serialize)]
struct NodeRef<'a> {
    name: &'a str,
    id: String,
}

#[derive(Serialize)]
struct Interpreter<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct Binary<'a> {
    path: String,
    size: u64,
    sha256: &'a str,
    executable_size: u64,
    stdlib_zip: StdlibZip<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_signature: Option<CodeSignature<'a>>,
}

/// Mach-O only: the ad-hoc signature that covers every byte before it (ZIP included).
#[derive(Serialize)]
struct CodeSignature<'a> {
    kind: &'static str,
    identifier: &'a str,
    offset: u64,
    size: u64,
    hash: &'static str,
    page_size: u64,
    pages: u64,
}

#[derive(Serialize)]
struct StdlibZip<'a> {
    offset: u64,
    size: u64,
    entries: usize,
    compression: &'a str,
    excluded: &'a [String],
    /// Written only when true: the manifests of releases without sources are unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sources: bool,
    /// What start-up and common imports read (the spec's `hot`), when the ZIP compresses and
    /// there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    hot: Option<HotMembers<'a>>,
    /// Written only when the spec asks for it: whether the zstd blocks share a trained dictionary
    /// (a ZIP whose modules are too few to train one has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    dictionary: Option<bool>,
}

#[derive(Serialize)]
struct HotMembers<'a> {
    paths: &'a [String],
    members: usize,
    /// `stored`, or `LZ4 blocks` (compiled modules; other files stored).
    written: &'static str,
}

#[derive(Serialize)]
struct Component {
    name: String,
    version: String,
    license: String,
    /// `interpreter`, `package` (a Python package compiled in: its extension modules are built in,
    /// its Python files in the ZIP), `linked` (its static libraries went into the binary) or `build`.
    role: &'static str,
    id: String,
    static_libraries: Vec<String>,
    /// Packages: the extension modules they built in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    modules: Vec<String>,
    sources: Vec<SourceRecord>,
    /// The recipe's patches, in the order they were applied (a CPython with its distribution's
    /// security fixes names each), with the blake3 of each file as its id has it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    patches: Vec<PatchRecord>,
}

#[derive(Serialize)]
struct PatchRecord {
    name: String,
    blake3: String,
}

#[derive(Serialize)]
struct SourceRecord {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    /// Paths of the commit left out of the source (a git pin's `exclude`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    path: &'a str,
    version: &'a str,
}

/// Realizes `fuse` nodes in-process: [`fuse`] into the transaction's output, and a line about
/// the result (or the error) in the entry's log.
pub struct Fuser<'a> {
    /// Where the interpreter and the closure's entries are read from.
    pub store: &'a Store,
    /// Recorded in the metadata as for the builds of the same run.
    pub sandboxed: bool,
}

impl Realizer for Fuser<'_> {
    type Error = FuseError;

    fn origin(&self, _node: &PlanNode) -> Origin {
        Origin::built(self.sandboxed)
    }

    fn realize(&self, plan: &Plan, n: NodeIndex, w: &mut Work) -> Result<(), FuseError> {
        let result = fuse(plan, n, self.store, w.out());
        let text = match &result {
            Ok(r) => format!(
                "fused {}: executable {} bytes + {} stdlib ZIP members = {} bytes, sha256 {}\n",
                r.binary.display(),
                r.executable_size,
                r.zip_entries,
                r.binary_size,
                r.sha256
            ),
            Err(e) => format!("{e}\n"),
        };
        let logged = w.write_log(&text);
        // The fuse error is the one to report; a log that cannot be written fails the node too.
        result?;
        logged.map_err(|e| FuseError::Invalid {
            node: plan.node(n).key.to_string(),
            message: e.to_string(),
        })
    }
}

/// Fuses node `n` of `plan` into `out` (its build directory). Inputs are read from `store`.
pub fn fuse(plan: &Plan, n: NodeIndex, store: &Store, out: &Path) -> Result<FuseReport, FuseError> {
    let node = plan.node(n);
    let who = node.key.to_string();
    let invalid = |message: String| FuseError::Invalid {
        node: who.clone(),
        message,
    };
    let io_err = |path: &Path, e: &dyn std::fmt::Display| FuseError::Io {
        node: who.clone(),
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let fplan = node.fuse.as_ref().ok_or_else(|| invalid("not a fuse node".into()))?;
    let spec = &fplan.spec;
    let interp = node
        .deps
        .iter()
        .map(|&d| plan.node(d))
        .find(|d| d.key.name == spec.interpreter)
        .ok_or_else(|| invalid(format!("interpreter `{}` is not a dependency", spec.interpreter)))?;
    let interp_dir = store.entry(&interp.store_name());
    let exe = interp_dir.join(&spec.executable);
    let stdlib = interp_dir.join(&spec.stdlib);
    if !exe.is_file() {
        return Err(invalid(format!("{} has no executable {}", interp.key, spec.executable)));
    }
    if !stdlib.is_dir() {
        return Err(invalid(format!("{} has no standard library directory {}", interp.key, spec.stdlib)));
    }
    let members = stdlib_members(&stdlib, spec).map_err(|(p, m)| match m {
        MemberError::Io(e) => io_err(&p, &e),
        MemberError::Uncompiled => invalid(format!(
            "{} has no compiled {}c beside it (the interpreter node must compile its stdlib with `compileall -b`)",
            p.display(),
            p.file_name().unwrap_or_default().to_string_lossy()
        )),
    })?;

    let bin_dir = out.join("bin");
    fs_err::create_dir_all(&bin_dir).map_err(|e| io_err(&bin_dir, &e))?;
    let binary = bin_dir.join(&fplan.release);
    let written = write_binary(&exe, &members, (spec.compression, spec.dictionary), &binary, &fplan.release).map_err(|e| match e {
        WriteError::Io(e) => io_err(&binary, &e),
        WriteError::MachO(source) => FuseError::MachO {
            node: who.clone(),
            path: exe.clone(),
            source,
        },
    })?;
    let Written {
        executable_size,
        zip_end,
        file_size,
        code_signature,
        dictionary,
    } = written;
    set_mode(&binary, 0o755).map_err(|e| io_err(&binary, &e))?;
    let sha256 = sha256_file(&binary).map_err(|e| io_err(&binary, &e))?;

    let modules = match &spec.modules {
        Some(m) => {
            let p = interp_dir.join(m);
            let text = fs_err::read_to_string(&p).map_err(|e| io_err(&p, &e))?;
            serde_json::from_str(&text).map_err(|e| io_err(&p, &e))?
        }
        None => serde_json::Value::Null,
    };
    let mut components = Vec::new();
    let mut build_tools = Vec::new();
    for d in plan.closure(&node.deps) {
        let c = plan.node(d);
        if c.is_host_specific() {
            build_tools.extend(c.tools.iter().map(|t| Tool {
                name: &t.name,
                path: &t.path,
                version: &t.version,
            }));
            continue;
        }
        let entry = store.entry(&c.store_name());
        let static_libraries = static_libraries(&entry);
        let package_modules = builtin_package_modules(&entry).map_err(|e| io_err(&entry, &e))?;
        let role = if c.key.name == spec.interpreter {
            "interpreter"
        } else if package_modules.is_some() {
            "package"
        } else if !static_libraries.is_empty() {
            "linked"
        } else {
            "build"
        };
        let mut comp = component(c, role, static_libraries);
        comp.modules = package_modules.unwrap_or_default();
        components.push(comp);
    }
    components.sort_by(|a, b| a.name.cmp(&b.name));
    build_tools.sort_by(|a, b| a.name.cmp(b.name));
    let license = binary_license(components.iter().map(|c| (c.role, c.license.as_str())));
    let manifest = Manifest {
        format: 1,
        release: &fplan.release,
        node: NodeRef {
            name: &node.key.name,
            id: node.id.to_hex(),
        },
        target: &node.key.target,
        flavor: &spec.flavor,
        interpreter: Interpreter {
            name: &interp.key.name,
            version: &interp.version,
        },
        license,
        binary: Binary {
            path: format!("bin/{}", fplan.release),
            size: file_size,
            sha256: &sha256,
            executable_size,
            code_signature: code_signature.as_ref().map(|s| CodeSignature {
                kind: "ad-hoc (linker-signed), CodeDirectory 0x20400",
                identifier: &s.identifier,
                offset: s.offset,
                size: s.size,
                hash: "sha256",
                page_size: s.page_size,
                pages: s.pages,
            }),
            stdlib_zip: StdlibZip {
                offset: executable_size,
                size: zip_end - executable_size,
                entries: members.len(),
                compression: spec.compression.as_str(),
                excluded: &spec.exclude,
                sources: spec.sources,
                hot: (!spec.hot.is_empty() && spec.compression != ZipCompression::Stored).then(|| HotMembers {
                    paths: &spec.hot,
                    members: members.iter().filter(|m| m.hot.is_some() && m.file.is_some()).count(),
                    written: if spec.compression == ZipCompression::SolidLz4Zstd {
                        "LZ4 blocks"
                    } else {
                        "stored"
                    },
                }),
                dictionary: spec.dictionary.then_some(dictionary),
            },
        },
        modules,
        components,
        build_tools,
    };
    let manifest_path = out.join("manifest.json");
    let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| io_err(&manifest_path, &e))?;
    text.push('\n');
    fs_err::write(&manifest_path, text).map_err(|e| io_err(&manifest_path, &e))?;
    Ok(FuseReport {
        binary,
        executable_size,
        zip_entries: members.len(),
        binary_size: file_size,
        sha256,
        code_signature,
    })
}

/// The licence expression of a binary made of components given as (role, licence): the licences
/// of all that went into it (interpreter, linked libraries, packages), not of build tools, each
/// once, in order, compound ones in parentheses; joined with AND.
pub fn binary_license<'a>(components: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let parts: std::collections::BTreeSet<&str> = components
        .into_iter()
        .filter(|(role, license)| *role != "build" && !license.is_empty())
        .map(|(_, license)| license)
        .collect();
    parts
        .into_iter()
        .map(|l| {
            if l.contains(" AND ") || l.contains(" OR ") {
                format!("({l})")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn component(c: &PlanNode, role: &'static str, static_libraries: Vec<String>) -> Component {
    Component {
        name: c.key.name.clone(),
        version: c.version.clone(),
        license: c.license.clone(),
        role,
        id: c.id.to_hex(),
        static_libraries,
        modules: Vec::new(),
        patches: c
            .patches
            .iter()
            .map(|p| PatchRecord {
                name: p.name.clone(),
                blake3: p.blake3.to_hex(),
            })
            .collect(),
        sources: c
            .sources
            .iter()
            .map(|s| match &s.pin {
                SourcePin::Sha256(h) => SourceRecord {
                    file: s.file.clone(),
                    sha256: Some(h.to_hex()),
                    git: None,
                    commit: None,
                    exclude: Vec::new(),
                },
                SourcePin::Git { url, commit, exclude } => SourceRecord {
                    file: s.file.clone(),
                    sha256: None,
                    git: Some(url.clone()),
                    commit: Some(commit.clone()),
                    exclude: exclude.clone(),
                },
            })
            .collect(),
    }
}

/// `lib/*.a` of a store entry, sorted.
/// The static libraries an entry offers: `lib/*.a`, and an interpreter's link kit
/// (`lib/spy-link/libpython*.a`, which a relinked flavor links).
fn static_libraries(entry: &Path) -> Vec<String> {
    let mut v: Vec<String> = [entry.join("lib"), entry.join("lib/spy-link")]
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".a"))
        .collect();
    v.sort();
    v
}

/// A member of the stdlib ZIP: its name in the archive (`/`-separated, directories end in `/`)
/// and, for files, where its bytes are.
#[derive(Debug, PartialEq, Eq)]
struct Member {
    name: String,
    file: Option<PathBuf>,
    /// The index of the first entry of the spec's `hot` it falls under: written uncompressed, or
    /// with `solid-lz4-zstd` into LZ4 blocks, in that order.
    hot: Option<usize>,
}

enum MemberError {
    Io(io::Error),
    /// A module whose `.pyc` is missing.
    Uncompiled,
}

/// Walks the standard library: every file but sources (their `.pyc` stands for them, and they come
/// too only with `sources`; a source without one is an error, but with `sources`), `__pycache__`
/// and the excluded paths; sorted by archive name.
fn stdlib_members(root: &Path, spec: &FuseSpec) -> Result<Vec<Member>, (PathBuf, MemberError)> {
    let under = |list: &[String], rel: &str| {
        list.iter()
            .position(|x| rel == x || rel.strip_prefix(x.as_str()).is_some_and(|r| r.starts_with('/')))
    };
    let excluded = |rel: &str| under(&spec.exclude, rel).is_some();
    let hot = |rel: &str| under(&spec.hot, rel);
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| (dir.clone(), MemberError::Io(e)))?;
        for entry in rd {
            let entry = entry.map_err(|e| (dir.clone(), MemberError::Io(e)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| (path.clone(), MemberError::Io(e)))?;
            // Excluding a module's source excludes its compiled form too.
            let source_excluded = rel.strip_suffix('c').is_some_and(|py| py.ends_with(".py") && excluded(py));
            if excluded(&rel) || source_excluded || name == "__pycache__" {
                continue;
            }
            if ft.is_dir() {
                out.push(Member {
                    name: format!("{rel}/"),
                    file: None,
                    hot: None,
                });
                stack.push((path, format!("{rel}/")));
            } else if name.ends_with(".py") {
                // With sources, a file that does not compile (CPython's tests keep bad-syntax
                // files as data) goes in as it is; without, its .pyc is what goes in.
                if !spec.sources && !path.with_extension("pyc").is_file() {
                    return Err((path, MemberError::Uncompiled));
                }
                if spec.sources {
                    out.push(Member {
                        hot: hot(&rel),
                        name: rel,
                        file: Some(path),
                    });
                }
            } else {
                out.push(Member {
                    hot: hot(&rel),
                    name: rel,
                    file: Some(path),
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Where the parts of a fused binary are.
struct Written {
    /// The executable's own bytes (the ZIP's offset).
    executable_size: u64,
    zip_end: u64,
    file_size: u64,
    code_signature: Option<macho::Signed>,
    /// Whether the zstd blocks have a trained dictionary.
    dictionary: bool,
}

enum WriteError {
    Io(io::Error),
    MachO(macho::MachOError),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Writes `exe` followed by the ZIP of `members` to `dest`; a Mach-O executable is then signed
/// again over the whole file, the ZIP inside its `__LINKEDIT` ([`macho`]).
/// `layout`: the ZIP's compression, and whether its zstd blocks share a trained dictionary.
fn write_binary(
    exe: &Path,
    members: &[Member],
    layout: (ZipCompression, bool),
    dest: &Path,
    identifier: &str,
) -> Result<Written, WriteError> {
    let (compression, dictionary) = layout;
    let mut file = fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)?;
    let mut src = fs_err::File::open(exe)?;
    let image = macho::start(src.file_mut(), file.file_mut()).map_err(WriteError::MachO)?;
    if image.is_none() {
        src.rewind()?;
        io::copy(&mut src, &mut file)?;
    }
    let executable_size = file.stream_position()?;
    let mut zip = zipout::ZipOut::new(io::BufWriter::with_capacity(1 << 16, file), dictionary);
    let method = match compression {
        ZipCompression::Stored => zipout::Method::Stored,
        ZipCompression::Deflated | ZipCompression::SolidZstd | ZipCompression::SolidLz4Zstd => zipout::Method::Deflated,
    };
    let (mut hot_solid, mut solid) = (Vec::new(), Vec::new());
    for m in members {
        let module = m.name.ends_with(".pyc")
            && m.file
                .as_ref()
                .is_some_and(|p| fs_err::metadata(p).is_ok_and(|d| d.len() <= zipout::SOLID_MEMBER_MAX));
        match (&m.file, m.hot) {
            (None, _) => zip.add_directory(m.name.trim_end_matches('/'))?,
            (Some(path), Some(index)) if compression == ZipCompression::SolidLz4Zstd && module => {
                hot_solid.push((index, m.name.as_str(), path.as_path()));
            }
            (Some(path), None) if matches!(compression, ZipCompression::SolidZstd | ZipCompression::SolidLz4Zstd) && module => {
                solid.push((m.name.as_str(), path.as_path()));
            }
            (Some(path), hot) => {
                let method = if hot.is_some() { zipout::Method::Stored } else { method };
                zip.add_file(&m.name, method, &mut fs_err::File::open(path)?)?;
            }
        }
    }
    // In the order start-up and common imports read them (the spec's order; by name below a
    // directory it names): each block is then decoded once, and the last one zipimport keeps is
    // the next one needed.
    hot_solid.sort_by_key(|&(index, name, _)| (index, name));
    let hot_solid: Vec<_> = hot_solid.into_iter().map(|(_, name, path)| (name, path)).collect();
    zip.add_solid(&hot_solid, zipout::BlockCodec::Lz4)?;
    zip.add_solid(&solid, zipout::BlockCodec::Zstd)?;
    let wrote_dictionary = zip.wrote_dictionary();
    let mut buffered = zip.finish()?;
    let zip_end = buffered.stream_position()?;
    buffered.flush()?;
    let mut file = buffered.into_inner().map_err(|e| e.into_error())?;
    let code_signature = match image {
        Some(image) => Some(macho::finish(&image, file.file_mut(), zip_end, identifier).map_err(WriteError::MachO)?),
        None => None,
    };
    let file_size = file.seek(io::SeekFrom::End(0))?;
    // The padding before the signature is the ZIP's comment: part of the ZIP.
    let zip_end = code_signature.as_ref().map_or(zip_end, |s| s.offset);
    Ok(Written {
        executable_size,
        zip_end,
        file_size,
        code_signature,
        dictionary: wrote_dictionary,
    })
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut reader = spy_hash::Sha256Reader::new(fs_err::File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.finish().0.to_hex())
}

#[cfg(test)]
mod tests;

/// Where a package node (graph/python/pyext/spy-pyext) lists the extension modules it compiled.
pub const BUILTINS_INDEX: &str = "lib/spy-builtins/builtins.json";

/// The modules a built-in package node compiled in, or `None` if the entry is not such a package.
fn builtin_package_modules(entry: &Path) -> Result<Option<Vec<String>>, String> {
    let index = entry.join(BUILTINS_INDEX);
    if !index.is_file() {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Builtin {
        module: String,
    }
    let text = fs_err::read_to_string(&index).map_err(|e| e.to_string())?;
    let list: Vec<Builtin> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let mut modules: Vec<String> = list.into_iter().map(|b| b.module).collect();
    modules.sort();
    Ok(Some(modules))
}
