//! `spy realize RELEASE --with PKG`: PyPI packages compiled into a single file through the graph's
//! own package mechanism. Each requested sdist is resolved once per Python version (pip's finder,
//! the version and file recorded with its sha256 in a lock file beside the graph, and reused after,
//! so node ids stay put; `--offline` reads only the lock), checked for a build spy can run (no Rust,
//! no Fortran, setuptools), and turned into a package node that the release's flavor node depends
//! on, by an overlay made here and applied like any other.

mod lock;
mod request;
mod sdist;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spy_recipe::{Graph, Recipe};
use spy_store::Store;

pub use lock::{Lock, Locked, Wheel};
pub use request::{normalize, Request};
pub use sdist::{inspect, SdistFacts};

/// The node every CPython recipe builds with (graph/python/cpython-tools): among a flavor node's
/// dependencies, the interpreter it relinks is the one that depends on this.
const CPYTHON_TOOLS: &str = "cpython-tools";
/// What every package node builds with, as graph/python/packages/*.toml have it.
const PACKAGE_DEPS: [&str; 2] = ["toolchain", "pyext-tools"];
/// The C++ runtime a package with C++ sources links (greenlet's and msgpack's recipes use it).
const CXX_RUNTIME: &str = "libcxx";

#[derive(Debug, thiserror::Error)]
pub enum WithError {
    #[error("--with {spec}: {why}")]
    BadRequest { spec: String, why: String },
    #[error("--with {first} and --with {second} ask for two versions of one package")]
    TwoVersions { first: String, second: String },
    #[error("--with compiles packages into Python releases (python3.11-x86_64...); `{node}` is not one")]
    NotARelease { node: String },
    #[error("{release} for {target} fuses {interpreter} as it was built, without relinking it: packages cannot be compiled into it")]
    NotRelinked {
        release: String,
        target: String,
        interpreter: String,
    },
    #[error("{interpreter}: none of its dependencies is a CPython built with {CPYTHON_TOOLS}, so spy cannot tell which Python to build packages for")]
    NoBaseInterpreter { interpreter: String },
    #[error("lock file {}: {message}", path.display())]
    Lock { path: PathBuf, message: String },
    #[error("{name} for Python {python} is not in the lock file {}, and --offline reads only that", lock.display())]
    NotLocked { name: String, python: String, lock: PathBuf },
    #[error("--with {requirement} (Python {python}): {message}")]
    Resolve {
        requirement: String,
        python: String,
        message: String,
    },
    #[error("{file} cannot be compiled in: {reason}")]
    Refused { file: String, reason: String },
    #[error("{file}: cannot read the sdist: {message}")]
    Archive { file: String, message: String },
    #[error("--with {spec}: the graph has its own {node}, version {has}")]
    GraphVersion { spec: String, node: String, has: String },
    #[error(transparent)]
    Fetch(#[from] spy_fetch::FetchError),
    #[error(transparent)]
    Recipe(#[from] spy_recipe::RecipeError),
    #[error(transparent)]
    Store(#[from] spy_store::StoreError),
}

impl WithError {
    /// What to do about it, for the command line.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            WithError::BadRequest { .. } | WithError::TwoVersions { .. } => {
                "write `--with NAME` (the newest sdist) or `--with NAME==VERSION`".into()
            }
            WithError::NotARelease { .. } => "`spy list` shows the releases; a package goes into every release named with it".into(),
            WithError::NotRelinked { .. } => {
                "build the package into a Linux release; darwin releases are cross-built (docs/darwin.md)".into()
            }
            WithError::NotLocked { .. } => {
                "run the same command once without --offline: it resolves the package and records it in the lock file".into()
            }
            WithError::Resolve { .. } => {
                "check the name and version on the package index; pip's own configuration (pip.conf, PIP_INDEX_URL) says which index".into()
            }
            WithError::Refused { .. } => "docs/packages.md, \"Packages from PyPI\", says what spy can compile in".into(),
            WithError::GraphVersion { node, .. } => {
                format!("drop the version to use the graph's {node}, or change its recipe with an overlay")
            }
            WithError::Lock { .. } => "fix or delete the lock file; spy writes it again".into(),
            WithError::Fetch(f) => f.hint(),
            _ => return None,
        })
    }
}

/// A release's flavor node and the interpreter it relinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The flavor node (python3.11-interp), which gets the packages as dependencies.
    pub flavor: String,
    /// The CPython node it relinks (cpython3.11, slpython2.7).
    pub base: String,
    /// `3.11`.
    pub python: String,
    /// What package node names end in for it, as the graph names them (`py3.11`, `slp2.7`).
    pub suffix: String,
}

pub(crate) fn is_python_version(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

fn builds_with_cpython_tools(r: &Recipe) -> bool {
    r.deps.iter().any(|d| d.as_str() == CPYTHON_TOOLS)
}

/// The flavor and interpreter of the release `release` for `target`.
pub fn interpreter_of(graph: &Graph, release: &str, target: &str) -> Result<Interpreter, WithError> {
    let recipe = graph.recipe_for(release, target)?;
    let Some(fuse) = &recipe.fuse else {
        return Err(WithError::NotARelease { node: release.into() });
    };
    let flavor = graph.recipe_for(&fuse.interpreter, target)?;
    if builds_with_cpython_tools(&flavor) {
        return Err(WithError::NotRelinked {
            release: release.into(),
            target: target.into(),
            interpreter: fuse.interpreter.clone(),
        });
    }
    let base = flavor
        .deps
        .iter()
        .find_map(|d| graph.recipe_for(d, target).ok().filter(builds_with_cpython_tools))
        .ok_or_else(|| WithError::NoBaseInterpreter {
            interpreter: fuse.interpreter.clone(),
        })?;
    let mut parts = base.version.split(|c: char| !c.is_ascii_digit());
    let python = format!("{}.{}", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !is_python_version(&python) {
        return Err(WithError::NoBaseInterpreter {
            interpreter: fuse.interpreter.clone(),
        });
    }
    let name = base.name.as_str();
    let suffix = if let Some(v) = name.strip_prefix("cpython") {
        format!("py{v}")
    } else if let Some(v) = name.strip_prefix("slpython") {
        format!("slp{v}")
    } else {
        name.to_string()
    };
    Ok(Interpreter {
        flavor: fuse.interpreter.clone(),
        base: name.to_string(),
        python,
        suffix,
    })
}

/// How one package gets into one flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Package {
    /// The graph has a recipe for it already (greenlet-py3.11): that node is used.
    Graph { node: String, version: String },
    /// Made from the lock entry.
    Locked { node: String, entry: Locked },
}

impl Package {
    pub fn node(&self) -> &str {
        match self {
            Package::Graph { node, .. } | Package::Locked { node, .. } => node,
        }
    }
    pub fn version(&self) -> &str {
        match self {
            Package::Graph { version, .. } => version,
            Package::Locked { entry, .. } => &entry.version,
        }
    }
}

/// Settings of one `--with` run.
pub struct Options<'a> {
    pub lock: PathBuf,
    pub offline: bool,
    pub log: &'a dyn Fn(&str),
}

/// What was decided, per flavor node.
pub type Decided = BTreeMap<String, (Interpreter, Vec<Package>)>;

/// Resolves `specs` for the releases `roots` (`(name, target)`), updates the lock file, and applies
/// the overlay that compiles the packages into their flavors to `graph`.
pub fn apply(graph: &mut Graph, store: &Store, roots: &[(String, String)], specs: &[String], opts: &Options) -> Result<Decided, WithError> {
    let mut requests: Vec<Request> = Vec::new();
    for spec in specs {
        let r = Request::parse(spec)?;
        match requests.iter().find(|o| o.name == r.name) {
            Some(o) if o.version == r.version => continue,
            Some(o) => {
                return Err(WithError::TwoVersions {
                    first: o.spec.clone(),
                    second: r.spec.clone(),
                })
            }
            None => requests.push(r),
        }
    }
    let mut decided: Decided = BTreeMap::new();
    for (release, target) in roots {
        let i = interpreter_of(graph, release, target)?;
        decided.entry(i.flavor.clone()).or_insert_with(|| (i, Vec::new()));
    }
    let mut lock = Lock::load(&opts.lock)?;
    let mut changed = false;
    for (interp, packages) in decided.values_mut() {
        for req in &requests {
            let node = format!("{}-{}", req.name, interp.suffix);
            if graph.nodes.contains_key(&node) {
                let version = graph.recipe_for(&node, default_target(graph))?.version.to_string();
                if req.version.as_ref().is_some_and(|v| v != &version) {
                    return Err(WithError::GraphVersion {
                        spec: req.spec.clone(),
                        node,
                        has: version,
                    });
                }
                packages.push(Package::Graph { node, version });
                continue;
            }
            let entry = match lock.find(&req.name, &interp.python, req.version.as_deref()) {
                Some(e) => {
                    (opts.log)(&format!(
                        "{} {} for Python {}: from {}",
                        req.name,
                        e.version,
                        interp.python,
                        opts.lock.display()
                    ));
                    e.clone()
                }
                None if opts.offline => {
                    return Err(WithError::NotLocked {
                        name: req.spec.clone(),
                        python: interp.python.clone(),
                        lock: opts.lock.clone(),
                    })
                }
                None => {
                    let e = resolve(graph, store, req, interp, opts.log)?;
                    lock.put(e.clone());
                    changed = true;
                    e
                }
            };
            packages.push(Package::Locked { node, entry });
        }
    }
    if changed {
        lock.save()?;
        (opts.log)(&format!("recorded in {}", opts.lock.display()));
    }
    let text = overlay(graph, &decided);
    graph.apply_generated_overlay(&opts.lock, &text)?;
    Ok(decided)
}

fn default_target(graph: &Graph) -> &str {
    graph.default_target().unwrap_or("x86_64-linux-musl")
}

/// Build requirements the package build always has: setuptools (the graph's, or the one
/// CPython bundles), and what only pip's own builds use.
const BUILD_PROVIDES: [&str; 3] = ["setuptools", "wheel", "pip"];

/// Finds the sdist on the package index, refuses what cannot be built, gets its build requirements
/// the graph does not have as pure-Python wheels, and keeps every file in the store's source cache
/// (the build then needs no second download).
fn resolve(graph: &Graph, store: &Store, req: &Request, interp: &Interpreter, log: &dyn Fn(&str)) -> Result<Locked, WithError> {
    let python = interp.python.as_str();
    let requirement = req.requirement();
    let failed = |message: String| WithError::Resolve {
        requirement: requirement.clone(),
        python: python.into(),
        message,
    };
    log(&format!(
        "{requirement}: asking the package index for the sdist for Python {python}"
    ));
    let dir = store.staging_dir("with-")?;
    let found = spy_fetch::find_sdist(dir.path(), &requirement, python).map_err(failed)?;
    if !request::version_ok(&found.version) {
        return Err(failed(format!(
            "the index's version `{}` cannot name a node",
            found.version.escape_debug()
        )));
    }
    let path = dir.path().join(&found.file);
    let facts = inspect(&path, &found.file)?;
    let (sha256, _) = spy_fetch::add_file(store, &path)?;
    log(&format!(
        "{}: {} {} ({}, sha256 {sha256}, {})",
        req.name,
        found.file,
        found.version,
        if facts.cxx { "C and C++" } else { "C" },
        facts.license
    ));
    let graph_has = |name: &str| graph.nodes.contains_key(&format!("{name}-{}", interp.suffix));
    let mut graph_tools = Vec::new();
    let mut wanted = Vec::new();
    for r in &facts.build_requires {
        let name = normalize(sdist::requirement_name(r));
        if BUILD_PROVIDES.contains(&name.as_str()) {
            continue;
        }
        if graph_has(&name) {
            graph_tools.push(name);
        } else {
            wanted.push(r.clone());
        }
    }
    let mut wheels = Vec::new();
    if !wanted.is_empty() {
        log(&format!(
            "{}: build requirements as pure-Python wheels: {}",
            req.name,
            wanted.join(" ")
        ));
        let wheel_dir = store.staging_dir("with-wheels-")?;
        let files = spy_fetch::download_pure_wheels(wheel_dir.path(), &wanted, python).map_err(failed)?;
        for path in files {
            let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let Some((name, version)) = pure_wheel_name(&file) else {
                return Err(failed(format!(
                    "pip downloaded `{}`, which is not a pure-Python wheel",
                    file.escape_debug()
                )));
            };
            if BUILD_PROVIDES.contains(&name.as_str()) || graph_has(&name) {
                continue;
            }
            let (sha256, _) = spy_fetch::add_file(store, &path)?;
            log(&format!("{}: build requirement {file}", req.name));
            wheels.push(Wheel {
                name,
                version,
                file,
                sha256: sha256.to_hex(),
            });
        }
    }
    Ok(Locked {
        name: req.name.clone(),
        python: python.into(),
        version: found.version,
        file: found.file,
        sha256: sha256.to_hex(),
        license: facts.license,
        cxx: facts.cxx,
        graph_tools,
        wheels,
    })
}

/// `(name, version)` of a wheel file tagged `none-any`: `setuptools_scm-9.2.2-py3-none-any.whl`.
fn pure_wheel_name(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) || parts[parts.len() - 2] != "none" || parts[parts.len() - 1] != "any" {
        return None;
    }
    let name = normalize(parts[0]);
    let version = parts[1].to_string();
    (request::is_normalized(&name) && request::version_ok(&version) && spy_recipe::FileName::is_valid(file)).then_some((name, version))
}

/// The build of every package node made from the lock: spy-pyext runs the sdist's setup.py (one
/// that has only a pyproject.toml or setup.cfg gets the one-line setup.py setuptools reads them
/// with, as graph/python/packages/tzdata.toml does).
const BUILD: &str = "[ -e setup.py ] || printf 'import setuptools\\nsetuptools.setup()\\n' > setup.py\nspy-pyext build\n";
const INSTALL: &str = "spy-pyext install";

/// The overlay: a node per locked package, and each flavor's new dependencies. Deterministic, so
/// the same lock gives the same ids.
pub fn overlay(graph: &Graph, decided: &Decided) -> String {
    use toml::{Table, Value};
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let mut nodes = Table::new();
    for (interp, packages) in decided.values() {
        for p in packages {
            let Package::Locked { node, entry } = p else { continue };
            let mut deps: Vec<String> = PACKAGE_DEPS.iter().map(|d| d.to_string()).collect();
            deps.push(interp.base.clone());
            for tool in &entry.graph_tools {
                let node = format!("{tool}-{}", interp.suffix);
                if graph.nodes.contains_key(&node) && !deps.contains(&node) {
                    deps.push(node);
                }
            }
            let setuptools = format!("setuptools-{}", interp.suffix);
            if graph.nodes.contains_key(&setuptools) {
                deps.push(setuptools);
            }
            if entry.cxx && graph.nodes.contains_key(CXX_RUNTIME) {
                deps.push(CXX_RUNTIME.into());
            }
            let source = |file: &str, sha256: &str, name: &str, version: &str| {
                let mut t = Table::new();
                t.insert("file".into(), Value::String(file.into()));
                t.insert("sha256".into(), Value::String(sha256.into()));
                t.insert("pypi".into(), Value::String(format!("{name}=={version}")));
                Value::Table(t)
            };
            let mut sources = vec![source(&entry.file, &entry.sha256, &entry.name, &entry.version)];
            sources.extend(entry.wheels.iter().map(|w| source(&w.file, &w.sha256, &w.name, &w.version)));
            // Each wheel unpacks to a directory that is a sys.path entry ($src_1, $src_2...).
            let mut build = String::new();
            if !entry.wheels.is_empty() {
                let dirs: Vec<String> = (1..=entry.wheels.len()).map(|i| format!("$src_{i}")).collect();
                build = format!("export SPY_PYEXT_PATH=\"{}\"\n", dirs.join(":"));
            }
            build.push_str(BUILD);
            let mut phases = Table::new();
            phases.insert("build".into(), Value::String(build));
            phases.insert("install".into(), Value::String(INSTALL.into()));
            let mut t = Table::new();
            t.insert("version".into(), Value::String(entry.version.clone()));
            t.insert(
                "description".into(),
                Value::String(format!("{} from PyPI (spy realize --with)", entry.name)),
            );
            t.insert("license".into(), Value::String(entry.license.clone()));
            t.insert("deps".into(), strings(deps));
            t.insert("sources".into(), Value::Array(sources));
            t.insert("phases".into(), Value::Table(phases));
            nodes.insert(node.clone(), Value::Table(t));
        }
        let mut flavor = Table::new();
        flavor.insert(
            "extra_deps".into(),
            strings(packages.iter().map(|p| p.node().to_string()).collect()),
        );
        nodes.insert(interp.flavor.clone(), Value::Table(flavor));
    }
    let mut doc = Table::new();
    doc.insert("nodes".into(), Value::Table(nodes));
    toml::to_string(&doc).expect("an overlay of strings serializes")
}

/// Where the lock file of a graph is by default: `spy.lock` beside the graph directory.
pub fn default_lock_path(graph_dir: &Path) -> PathBuf {
    let dir = graph_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join("spy.lock")
}
